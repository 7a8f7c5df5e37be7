"""The decoder's rnn_cell: one step of label generation, conditioned on the text."""

from __future__ import annotations

import keras
from keras import ops

CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell, "simple": keras.layers.SimpleRNNCell}
# The core cells' options that decide what a step computes, given explicitly rather than taken
# from Keras's defaults (the values of Keras 3.15, which every saved model was trained with):
# a loaded model makes its cells through this constructor, so a changed Keras default would
# otherwise change the function its saved weights compute. `decoding_step` re-derives these
# formulas.
CELL_OPTIONS = {
    "lstm": dict(activation="tanh", recurrent_activation="sigmoid", use_bias=True),
    "gru": dict(activation="tanh", recurrent_activation="sigmoid", use_bias=True, reset_after=True),
    "simple": dict(activation="tanh", use_bias=True),
}
# How the text feature vector enters each step (it always sets the initial state too).
CONTEXTS = ("concat", "init", "add", "mlp")


@keras.saving.register_keras_serializable(package="mlgen")
class LabelDecoderCell(keras.layers.Layer):
    """An RNN cell whose steps see the previous label and, by `context`, the text feature vector.

    A stack of `num_layers` core `lstm`, `gru` or `simple` (Elman: the state is the output)
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
        features_dim: size of the text feature vector.
        cell_type: the core cells' type, one of `"lstm"`, `"gru"`, `"simple"`.
        num_layers: stacked core cells (each one's output is the next one's input).
        context: one of `CONTEXTS`.

    Call arguments:
        inputs: previous-label embeddings, `(batch, label_embedding_dim)`.
        states: `[*core_states, features]`: `num_layers` groups of core states `(batch,
            units)` (two per LSTM: h, c) and the feature vector `(batch, features_dim)`.

    Returns:
        `(output, new_states)`: output `(batch, units)`, states as given.
    """

    def __init__(self, units: int, features_dim: int, cell_type: str, num_layers: int, context: str, **kwargs):
        super().__init__(**kwargs)
        if cell_type not in CELLS:
            raise ValueError(f"unknown cell type {cell_type!r}; choose one of: {', '.join(CELLS)}")
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; choose one of: {', '.join(CONTEXTS)}")
        self.units = units
        self.features_dim = features_dim
        self.cell_type = cell_type
        self.num_layers = num_layers
        self.context = context
        self.cores = [
            CELLS[cell_type](units, name=f"{cell_type}_cell" + (f"_{i}" if i else ""), **CELL_OPTIONS[cell_type])
            for i in range(num_layers)
        ]
        self.states_per_core = 2 if cell_type == "lstm" else 1
        # The initial core states are a learned function of the text feature vector.
        self.initial_state_layer = keras.layers.Dense(
            units * self.states_per_core * num_layers, activation="tanh", name="init"
        )
        self.context_layer = None
        if context == "mlp":
            self.context_layer = keras.layers.Dense(units, activation="tanh", name="context_mlp")
        elif context == "add":
            self.context_layer = keras.layers.Dense(units, name="context_add")

    @property
    def state_size(self):
        return [self.units] * (self.states_per_core * self.num_layers) + [self.features_dim]

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        batch, label_dim = input_shape[0], input_shape[-1]
        step_dim = label_dim + {"concat": self.features_dim, "mlp": self.units}.get(self.context, 0)
        for i, core in enumerate(self.cores):
            if not core.built:
                core.build((batch, step_dim if i == 0 else self.units))
        if not self.initial_state_layer.built:
            self.initial_state_layer.build((batch, self.features_dim))
        if self.context_layer is not None and not self.context_layer.built:
            self.context_layer.build((batch, self.features_dim))

    def call(self, inputs, states, training=None):
        *core_states, features = states
        if self.context == "concat":
            output = ops.concatenate([inputs, features], axis=-1)  # (batch, label_dim + features_dim)
        elif self.context == "mlp":
            output = ops.concatenate([inputs, self.context_layer(features)], axis=-1)  # (batch, label_dim + units)
        else:
            output = inputs
        new_states = []
        for i, core in enumerate(self.cores):
            own = list(core_states[i * self.states_per_core : (i + 1) * self.states_per_core])
            output, own = core(output, own, training=training)
            new_states.extend(own if isinstance(own, (list, tuple)) else [own])
        if self.context == "add":
            output = output + self.context_layer(features)
        return output, [*new_states, features]

    def decoding_state(self, features):
        """The initial state for `decoding_step`: `[*core_states, constants]`.

        Whatever a step computes from the feature vector alone is computed here once per
        document instead of at every step: its share of the first core cell's input
        projection (`concat`, `mlp`, bias included), or the vector added to the output
        (`add`). `constants` is `(batch, k)`.
        """
        *core_states, _ = self.initial_state(features)
        first = self.cores[0]
        if self.context in ("concat", "mlp"):
            fed = features if self.context == "concat" else self.context_layer(features)
            label_dim = first.kernel.shape[0] - fed.shape[-1]
            constants = ops.matmul(fed, first.kernel[label_dim:]) + _input_bias(first)
        elif self.context == "add":
            constants = self.context_layer(features)
        else:
            constants = ops.zeros((ops.shape(features)[0], 1))
        return [*core_states, constants]

    def decoding_step(self, inputs, states):
        """One inference step from `decoding_state`: the same function as `call` with
        `training=False` (up to float rounding), at a fraction of the first cell's cost.

        Calling the Keras cells themselves (as `call` does) would leave nothing to reuse:
        a cell takes its whole input and projects it at every step, the feature vector's
        share included (a step with the label head took 25-35% longer that way: GRU and
        LSTM, 256 units, 300 features, 256 and 1,280 rows, on CPU). So this step
        re-derives the cells' formulas from their weights (`_core_step`), which ties it
        to Keras's kernel and bias layout and gate order; tests/test_keras_internals.py
        checks it against Keras's own cells, so that a change there fails a test instead
        of changing predictions.

        Args:
            inputs: previous-label embeddings `(batch, label_embedding_dim)`.
            states: `[*core_states, constants]` from `decoding_state`.

        Returns:
            `(output (batch, units), new_states)`.
        """
        *core_states, constants = states
        output, new_states = inputs, []
        for i, core in enumerate(self.cores):
            own = list(core_states[i * self.states_per_core : (i + 1) * self.states_per_core])
            if i == 0 and self.context in ("concat", "mlp"):
                label_dim = inputs.shape[-1]
                projected = ops.matmul(output, core.kernel[:label_dim]) + constants
            else:
                projected = ops.matmul(output, core.kernel) + _input_bias(core)
            output, own = _core_step(core, projected, own)
            new_states.extend(own)
        if self.context == "add":
            output = output + constants
        return output, [*new_states, constants]

    def initial_state(self, features):
        """`[*core_states, features]` to start decoding a batch of feature vectors `(batch, features_dim)`."""
        start = self.initial_state_layer(features)  # (batch, units * states_per_core * num_layers)
        count = self.states_per_core * self.num_layers
        core_states = ops.split(start, count, axis=-1) if count > 1 else [start]
        return [*core_states, features]

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            features_dim=self.features_dim,
            cell_type=self.cell_type,
            num_layers=self.num_layers,
            context=self.context,
        )
        return config


def _input_bias(core):
    """The bias a Keras core cell adds to its input projection (0 without bias).

    Keras's layout: `bias` is `(gates * units,)`, or `(2, 3 * units)` for a `GRUCell` with
    `reset_after` (input bias, recurrent bias); pinned by tests/test_keras_internals.py."""
    if not core.use_bias:
        return 0.0
    if isinstance(core, keras.layers.GRUCell) and core.reset_after:
        return core.bias[0]  # (2, 3 * units): input bias, recurrent bias
    return core.bias


def _core_step(core, projected, states):
    """A Keras `GRUCell` / `LSTMCell` / `SimpleRNNCell` step at inference, given its input
    projection `inputs @ kernel + input bias` (the cells' own formulas, no dropout).

    Keras's layout, which this relies on: the kernels' columns are the gates side by
    side, `(z, r, h)` for a GRU and `(i, f, c, o)` for an LSTM; pinned by
    tests/test_keras_internals.py against the cells' own `call`."""
    if isinstance(core, keras.layers.GRUCell):
        (h_tm1,) = states
        if not core.reset_after:
            raise ValueError("decoding_step needs GRUCell(reset_after=True), the Keras default")
        inner = ops.matmul(h_tm1, core.recurrent_kernel)
        if core.use_bias:
            inner = inner + core.bias[1]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
        z = core.recurrent_activation(x_z + r_z)
        r = core.recurrent_activation(x_r + r_r)
        h = z * h_tm1 + (1 - z) * core.activation(x_h + r * r_h)
        return h, [h]
    if isinstance(core, keras.layers.LSTMCell):
        h_tm1, c_tm1 = states
        z_i, z_f, z_c, z_o = ops.split(projected + ops.matmul(h_tm1, core.recurrent_kernel), 4, axis=-1)
        c = core.recurrent_activation(z_f) * c_tm1 + core.recurrent_activation(z_i) * core.activation(z_c)
        h = core.recurrent_activation(z_o) * core.activation(c)
        return h, [h, c]
    (h_tm1,) = states
    h = projected + ops.matmul(h_tm1, core.recurrent_kernel)
    h = core.activation(h) if core.activation is not None else h
    return h, [h]
