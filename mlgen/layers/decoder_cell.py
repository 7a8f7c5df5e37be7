"""The decoder's rnn_cell: one step of label generation, conditioned on the text."""

from __future__ import annotations

import keras
from keras import ops

CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell, "simple": keras.layers.SimpleRNNCell}


@keras.saving.register_keras_serializable(package="mlgen")
class LabelDecoderCell(keras.layers.Layer):
    """An RNN cell whose every step sees the previous label and the text feature vector.

    The step input is `[embedding of the previous label; text feature vector]`, fed to
    a core `lstm`, `gru` or `simple` (Elman: the state is the output) cell. The text
    feature vector rides along as the last state, unchanged, so that
    `keras.layers.RNN(LabelDecoderCell(...))` runs the cell over a whole target
    sequence and a search can run it one step at a time with the same weights.

    Args:
        units: state size of the core cell.
        context_dim: size of the text feature vector.
        cell: core cell type, one of `"lstm"`, `"gru"`, `"simple"`.

    Call arguments:
        inputs: previous-label embeddings, `(batch, label_embedding_dim)`.
        states: `[*core_states, context]`: core states `(batch, units)` (two for
            LSTM: h, c) and the feature vector `(batch, context_dim)`.

    Returns:
        `(output, new_states)`: output `(batch, units)`, states as given.
    """

    def __init__(self, units: int, context_dim: int, cell: str = "gru", **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        self.units = units
        self.context_dim = context_dim
        self.cell = cell
        self.core = CELLS[cell](units, name=f"{cell}_cell")
        self.num_core_states = 2 if cell == "lstm" else 1
        # The initial core state is a learned function of the text feature vector.
        self.initial_state_layer = keras.layers.Dense(units * self.num_core_states, activation="tanh", name="init")

    @property
    def state_size(self):
        return [self.units] * self.num_core_states + [self.context_dim]

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        if not self.core.built:
            self.core.build((input_shape[0], input_shape[-1] + self.context_dim))
        if not self.initial_state_layer.built:
            self.initial_state_layer.build((input_shape[0], self.context_dim))

    def call(self, inputs, states, training=None):
        *core_states, context = states
        step_input = ops.concatenate([inputs, context], axis=-1)  # (batch, label_embedding_dim + context_dim)
        output, new_core_states = self.core(step_input, list(core_states), training=training)
        return output, [*new_core_states, context]

    def initial_state(self, context):
        """`[*core_states, context]` to start decoding a batch of feature vectors `(batch, context_dim)`."""
        start = self.initial_state_layer(context)  # (batch, units * num_core_states)
        core_states = ops.split(start, self.num_core_states, axis=-1) if self.num_core_states > 1 else [start]
        return [*core_states, context]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, context_dim=self.context_dim, cell=self.cell)
        return config
