"""Luong attention of the decoder over the CNN's per-position feature maps."""

from __future__ import annotations

import keras
from keras import ops

SCORES = ("dot", "general", "concat")


@keras.saving.register_keras_serializable(package="mlgen")
class LuongAttention(keras.layers.Layer):
    """Global attention (Luong et al., 2015): each decoder output looks at every text position.

    Scores between a decoder output `h` and a position's features `m`:

    - `"dot"`: `h · m'`, with `m' = W m` the memory projected once to `units` (so the
      two sizes match; `m'` is then also what is averaged);
    - `"general"`: `h · W m` (bilinear), averaging the raw features `m`;
    - `"concat"`: `v · tanh(W [h; m])`.

    The weights are a softmax over the real (non-padding) positions; the attentional
    output is `tanh(W_c [c; h])`, `c` the weighted average of the memory.

    Args:
        units: size of the decoder outputs (and of the attentional output).
        score: one of `SCORES`.

    Call arguments:
        query: decoder outputs `(batch, steps, units)`.
        memory: per-position features `(batch, positions, memory_dim)`.
        mask: bool `(batch, positions)`, True for real positions.

    Returns:
        `(outputs, weights)`: `(batch, steps, units)` and `(batch, steps, positions)`;
        each weight row sums to 1 over the real positions and is 0 on padding.
    """

    def __init__(self, units: int, score: str, **kwargs):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}; choose one of: {', '.join(SCORES)}")
        self.units = units
        self.score = score
        self.supports_masking = True  # the decoder's step mask passes through to the outputs
        self.memory_layer = keras.layers.Dense(units, use_bias=False, name="memory")
        if score == "concat":
            self.query_layer = keras.layers.Dense(units, use_bias=False, name="query")
            self.energy_layer = keras.layers.Dense(1, use_bias=False, name="energy")
        self.output_layer = keras.layers.Dense(units, activation="tanh", name="attentional")

    def build(self, query_shape, memory_shape=None, mask_shape=None):
        memory_dim = memory_shape[-1]
        self.memory_layer.build((None, None, memory_dim))
        if self.score == "concat":
            self.query_layer.build((None, None, self.units))
            self.energy_layer.build((None, None, None, self.units))
        value_dim = self.units if self.score == "dot" else memory_dim
        self.output_layer.build((None, None, value_dim + self.units))

    def call(self, query, memory, mask):
        keys = self.memory_layer(memory)  # (batch, positions, units)
        values = keys if self.score == "dot" else memory
        if self.score == "concat":
            hidden = ops.tanh(self.query_layer(query)[:, :, None, :] + keys[:, None, :, :])
            scores = self.energy_layer(hidden)[..., 0]  # (batch, steps, positions)
        else:
            scores = ops.einsum("bsu,bpu->bsp", query, keys)
        real = ops.cast(mask, "bool")[:, None, :]  # (batch, 1, positions)
        weights = ops.softmax(ops.where(real, scores, -1e9), axis=-1)
        weights = ops.where(real, weights, 0.0)
        attended = ops.einsum("bsp,bpd->bsd", weights, values)  # (batch, steps, value_dim)
        return self.output_layer(ops.concatenate([attended, query], axis=-1)), weights

    def compute_mask(self, query, previous_mask=None):
        # Keras passes the first input and its mask: the query's step mask goes to the outputs.
        return [previous_mask, None]

    def compute_output_shape(self, query_shape, memory_shape=None, mask_shape=None):
        return (*query_shape[:2], self.units), (*query_shape[:2], memory_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, score=self.score)
        return config
