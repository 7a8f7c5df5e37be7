"""Where mlgen relies on Keras internals, these tests fail when Keras changes them (issue 26).

Two places, neither with a public route:

- `CNNTextModel._maybe_symbolic_build` (`mlgen/nn/backbone.py`) overrides a private hook of
  Keras's TensorFlow trainer so that `model.fit` runs under `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585); with it, `train_step` / `test_step` return logs of shape `(1,)`
  for Keras's multi-worker reduction. The hook's signature, its body (the one the override
  mirrors), how `fit` and `evaluate` call it, and that reduction are pinned here.
- `LabelDecoderCell.decoding_step` (`mlgen/nn/layers/decoder_cell.py`) re-derives the Keras
  `GRUCell` / `LSTMCell` / `SimpleRNNCell` step from their kernels and biases (so that the
  text's share of the first input projection is computed once per document). Its steps are
  checked here against Keras's own cells given the same weights, in float64 so that any
  difference above rounding (1e-6) is a change of layout or formula, not of precision.

A failure here after a Keras upgrade means: read the Keras change, adapt the override or the
derivation (or drop it, if Keras now does the right thing), and update the pinned text.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlgen.config import ModelConfig
from mlgen.nn import distribute
from mlgen.nn.backbone import CNNTextModel
from mlgen.nn.binary_relevance import BinaryRelevanceModel
from mlgen.nn.layers import decoder_cell
from mlgen.nn.layers.decoder_cell import CELL_OPTIONS, CELLS, CONTEXTS, LabelDecoderCell

# --- The multi-worker build hook -------------------------------------------------------------

# Keras 3.15.1's `TensorFlowTrainer._maybe_symbolic_build`, which `CNNTextModel` overrides
# under a multi-worker strategy with the same steps, except that it takes one replica's share
# of the batch (`distribute.local_batch`) where Keras reduces it across replicas.
KERAS_MAYBE_SYMBOLIC_BUILD = """
def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        for _, _, it in iterator:
            maybe_distributed_data_batch = next(it)
            has_distributed_values = tree.map_structure(
                lambda x: isinstance(x, tf.distribute.DistributedValues),
                maybe_distributed_data_batch,
            )
            if all(tree.flatten(has_distributed_values)):
                data_batch = self.distribute_strategy.reduce(
                    "MEAN",
                    maybe_distributed_data_batch,
                    axis=None,
                )
            else:
                data_batch = maybe_distributed_data_batch
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)
"""

# The multi-worker branch of Keras 3.15.1's `reduce_per_replica` (what `fit` and `evaluate`
# apply to step logs): the mean along axis 0, which fails on scalars; hence
# `distribute.vector_logs`.
KERAS_MULTI_WORKER_REDUCTION = """
if _collective_all_reduce_multi_worker(strategy):
    if reduction == "concat":
        return _multi_worker_concat(v, strategy)
    elif reduction == "sum":
        return strategy.reduce("SUM", v)
    elif reduction == "mean":
        return strategy.reduce("MEAN", v, axis=0)
"""

HOOK_SIGNATURE = "(self, iterator=None, data_batch=None)"


def _same_code(source: str, expected: str) -> bool:
    """Whether two pieces of Python are the same code (comments and layout aside)."""
    return ast.dump(ast.parse(textwrap.dedent(source))) == ast.dump(ast.parse(textwrap.dedent(expected)))


def test_keras_build_hook_has_the_signature_the_backbone_overrides():
    assert "_maybe_symbolic_build" in vars(CNNTextModel), "the backbone no longer overrides the hook: drop this test"
    assert str(inspect.signature(keras.Model._maybe_symbolic_build)) == HOOK_SIGNATURE
    assert str(inspect.signature(CNNTextModel._maybe_symbolic_build)) == HOOK_SIGNATURE
    # What the override calls to build, as Keras's own hook does.
    assert str(inspect.signature(keras.Model._symbolic_build)) == HOOK_SIGNATURE


def test_keras_build_hook_does_what_the_backbone_mirrors():
    source = inspect.getsource(keras.Model._maybe_symbolic_build)
    assert _same_code(source, KERAS_MAYBE_SYMBOLIC_BUILD), (
        f"Keras {keras.version()} changed `_maybe_symbolic_build`, which CNNTextModel overrides "
        f"(mlgen/nn/backbone.py) under a multi-worker strategy; compare with the override:\n{source}"
    )


def test_keras_multi_worker_log_reduction_is_the_one_vector_logs_answers():
    reduce_per_replica = inspect.getmodule(keras.Model._maybe_symbolic_build).reduce_per_replica
    assert str(inspect.signature(reduce_per_replica)) == "(values, strategy, reduction)"
    (_reduce,) = [
        node
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(reduce_per_replica))))
        if isinstance(node, ast.FunctionDef) and node.name == "_reduce"
    ]
    branch = _reduce.body[1] if isinstance(_reduce.body[0], ast.Expr) else _reduce.body[0]  # after the docstring
    assert _same_code(ast.unparse(branch), KERAS_MULTI_WORKER_REDUCTION), (
        f"Keras {keras.version()} changed how it reduces step logs on several workers, which "
        f"CNNTextModel.train_step / test_step answer with distribute.vector_logs:\n{ast.unparse(_reduce)}"
    )


def test_fit_and_evaluate_hand_the_hook_an_iterator_of_batches():
    """The structure the override reads: `for _, _, batches in iterator: next(batches)`."""
    seen = []

    class Spy(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            if iterator is not None:
                for _, _, batches in iterator:
                    seen.append(tf.nest.map_structure(lambda v: tuple(v.shape), next(batches)))
                    break
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
    model = Spy()
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=4, verbose=0)
    assert seen == [((4, 3), (4, 1))] * 2


def test_the_backbone_hook_builds_the_model_from_one_replica_s_batch(monkeypatch):
    config = ModelConfig(max_tokens=50, sequence_length=10, embedding_dim=6, filter_sizes=(2,), num_filters=4)
    model = BinaryRelevanceModel(["a", "b"], config)
    model.compile(keras.optimizers.Adam(), keras.losses.BinaryCrossentropy(from_logits=True))
    batch = (np.ones((4, 10), "int32"), np.zeros((4, 2), "float32"))
    built = BinaryRelevanceModel(["a", "b"], config)
    built(batch[0])
    monkeypatch.setattr(distribute, "is_multi_worker", lambda strategy: True)
    assert len(model.weights) < len(built.weights)
    model._maybe_symbolic_build(iterator=[(0, 0, iter([batch]))])
    # Keras's `_symbolic_build` ran on the batch: the network and the optimizer have their variables.
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in built.weights]
    assert model.optimizer.built
    assert model.predict(batch[0], verbose=0).shape == (4, 2)


# --- The decoding step re-derived from Keras's cells -------------------------------------------


@pytest.fixture
def float64():
    """Layers made inside compute in float64 (Keras's defaults put back after)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def _randomize(layer, rng):
    """Normal weights, biases included, so that every term of a step counts."""
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape))


@pytest.mark.parametrize("cell_type", sorted(CELLS))
def test_the_core_step_is_keras_s_cell_step(cell_type, float64):
    rng = np.random.default_rng(0)
    units, input_dim, gates = 5, 4, {"lstm": 4, "gru": 3, "simple": 1}[cell_type]
    core = CELLS[cell_type](units, **CELL_OPTIONS[cell_type])
    core.build((None, input_dim))
    _randomize(core, rng)
    # The layout the derivation reads: the gates' columns side by side; a GRU's biases per side.
    assert tuple(core.kernel.shape) == (input_dim, gates * units)
    assert tuple(core.recurrent_kernel.shape) == (units, gates * units)
    assert tuple(core.bias.shape) == ((2, gates * units) if cell_type == "gru" else (gates * units,))
    states = [rng.normal(size=(3, units)) for _ in range(2 if cell_type == "lstm" else 1)]
    inputs = rng.normal(size=(3, input_dim))
    output, new_states = core(inputs, states, training=False)
    projected = inputs @ np.asarray(core.kernel) + np.asarray(decoder_cell._input_bias(core))
    derived, derived_states = decoder_cell._core_step(core, projected, states)
    np.testing.assert_allclose(np.asarray(derived), np.asarray(output), rtol=0, atol=1e-6)
    new_states = new_states if isinstance(new_states, (list, tuple)) else [new_states]
    assert len(derived_states) == len(new_states)
    for derived_state, state in zip(derived_states, new_states):
        np.testing.assert_allclose(np.asarray(derived_state), np.asarray(state), rtol=0, atol=1e-6)


def _keras_step(cores, cell, inputs, states, features):
    """One step of `cell` computed with separate Keras cells `cores` (the same weights)."""
    per_core = cell.states_per_core
    x = {
        "concat": lambda: np.concatenate([inputs, features], axis=-1),
        "mlp": lambda: np.concatenate([inputs, np.asarray(cell.context_layer(features))], axis=-1),
    }.get(cell.context, lambda: inputs)()
    new_states = []
    for i, core in enumerate(cores):
        x, own = core(x, list(states[i * per_core : (i + 1) * per_core]), training=False)
        new_states.extend(own if isinstance(own, (list, tuple)) else [own])
    if cell.context == "add":
        x = x + cell.context_layer(features)
    return np.asarray(x), [np.asarray(s) for s in new_states]


@pytest.mark.parametrize("cell_type", sorted(CELLS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("context", CONTEXTS)
def test_decoding_step_equals_keras_s_cells_with_the_same_weights(cell_type, num_layers, context, float64):
    rng = np.random.default_rng(1)
    label_dim, features_dim, units, batch = 3, 4, 5, 2
    cell = LabelDecoderCell(units, features_dim, cell_type, num_layers, context)
    cell.build((None, label_dim))
    _randomize(cell, rng)
    cores = []
    for core in cell.cores:  # separate Keras cells, given the decoder cell's weights
        keras_core = CELLS[cell_type](units, **CELL_OPTIONS[cell_type])
        keras_core.build((None, core.kernel.shape[0]))
        keras_core.set_weights(core.get_weights())
        cores.append(keras_core)
    features = rng.normal(size=(batch, features_dim))
    *states, _ = cell.initial_state(features)
    keras_states = [np.asarray(s) for s in states]
    fast_states = cell.decoding_state(features)
    call_states = cell.initial_state(features)
    for _ in range(3):
        inputs = rng.normal(size=(batch, label_dim))
        expected, keras_states = _keras_step(cores, cell, inputs, keras_states, features)
        fast, fast_states = cell.decoding_step(inputs, fast_states)
        called, call_states = cell(inputs, call_states, training=False)
        np.testing.assert_allclose(np.asarray(fast), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.asarray(called), expected, rtol=0, atol=1e-6)
        for state, keras_state in zip(fast_states[:-1], keras_states):
            np.testing.assert_allclose(np.asarray(state), keras_state, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell_type", sorted(CELLS))
def test_the_core_cells_compute_what_saved_models_were_trained_with(cell_type):
    """The options that decide a step are mlgen's (CELL_OPTIONS), not whatever Keras defaults to."""
    cell = LabelDecoderCell(4, 3, cell_type, 2, "concat")
    for core in cell.cores:
        config = core.get_config()
        assert {key: config[key] for key in CELL_OPTIONS[cell_type]} == CELL_OPTIONS[cell_type]
