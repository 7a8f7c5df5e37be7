"""The decoder's rnn_cell: one step of label generation, conditioned on the text."""

from __future__ import annotations

import keras
from keras import ops

CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell, "simple": keras.layers.SimpleRNNCell}
# How the text feature vector enters each step (it always sets the initial state too).
CONTEXTS = ("concat", "init", "add", "mlp")


@keras.saving.register_keras_serializable(package="mlgen")
class LabelDecoderCell(keras.layers.Layer):
    """An RNN cell whose steps see the previous label and, by `context`, the text feature vector.

    A stack of `layers` core `lstm`, `gru` or `simple` (Elman: the state is the output)
    cells. The text feature vector sets the initial states and rides along as the last
    state, unchanged, so that `keras.layers.RNN(LabelDecoderCell(...))` runs the cell
    over a whole target sequence and a search can run it one step at a time with the
    same weights. How the feature vector enters every step (`context`):

    - `"concat"`: the first core cell's input is `[previous-label embedding; feature vector]`;
    - `"init"`: only through the initial states; the input is the label embedding;
    - `"add"`: a projection of the feature vector is added to the top cell's output;
    - `"mlp"`: `[label embedding; tanh(W · feature vector)]`, the feature vector
      through its own perceptron layer of `units` units.

    Args:
        units: state size of each core cell.
        context_dim: size of the text feature vector.
        cell: core cell type, one of `"lstm"`, `"gru"`, `"simple"`.
        layers: stacked core cells (each one's output is the next one's input).
        context: one of `CONTEXTS`.

    Call arguments:
        inputs: previous-label embeddings, `(batch, label_embedding_dim)`.
        states: `[*core_states, context]`: `layers` groups of core states `(batch,
            units)` (two per LSTM: h, c) and the feature vector `(batch, context_dim)`.

    Returns:
        `(output, new_states)`: output `(batch, units)`, states as given.
    """

    def __init__(
        self, units: int, context_dim: int, cell: str = "gru", layers: int = 1, context: str = "concat", **kwargs
    ):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; choose one of: {', '.join(CONTEXTS)}")
        self.units = units
        self.context_dim = context_dim
        self.cell = cell
        self.layers = layers
        self.context = context
        self.cores = [CELLS[cell](units, name=f"{cell}_cell" + (f"_{i}" if i else "")) for i in range(layers)]
        self.states_per_core = 2 if cell == "lstm" else 1
        # The initial core states are a learned function of the text feature vector.
        self.initial_state_layer = keras.layers.Dense(
            units * self.states_per_core * layers, activation="tanh", name="init"
        )
        self.context_layer = None
        if context == "mlp":
            self.context_layer = keras.layers.Dense(units, activation="tanh", name="context_mlp")
        elif context == "add":
            self.context_layer = keras.layers.Dense(units, name="context_add")

    @property
    def state_size(self):
        return [self.units] * (self.states_per_core * self.layers) + [self.context_dim]

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        batch, label_dim = input_shape[0], input_shape[-1]
        step_dim = label_dim + {"concat": self.context_dim, "mlp": self.units}.get(self.context, 0)
        for i, core in enumerate(self.cores):
            if not core.built:
                core.build((batch, step_dim if i == 0 else self.units))
        if not self.initial_state_layer.built:
            self.initial_state_layer.build((batch, self.context_dim))
        if self.context_layer is not None and not self.context_layer.built:
            self.context_layer.build((batch, self.context_dim))

    def call(self, inputs, states, training=None):
        *core_states, context = states
        if self.context == "concat":
            output = ops.concatenate([inputs, context], axis=-1)  # (batch, label_dim + context_dim)
        elif self.context == "mlp":
            output = ops.concatenate([inputs, self.context_layer(context)], axis=-1)  # (batch, label_dim + units)
        else:
            output = inputs
        new_states = []
        for i, core in enumerate(self.cores):
            own = list(core_states[i * self.states_per_core : (i + 1) * self.states_per_core])
            output, own = core(output, own, training=training)
            new_states.extend(own if isinstance(own, (list, tuple)) else [own])
        if self.context == "add":
            output = output + self.context_layer(context)
        return output, [*new_states, context]

    def initial_state(self, context):
        """`[*core_states, context]` to start decoding a batch of feature vectors `(batch, context_dim)`."""
        start = self.initial_state_layer(context)  # (batch, units * states_per_core * layers)
        count = self.states_per_core * self.layers
        core_states = ops.split(start, count, axis=-1) if count > 1 else [start]
        return [*core_states, context]

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, context_dim=self.context_dim, cell=self.cell, layers=self.layers, context=self.context
        )
        return config
