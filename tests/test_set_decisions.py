"""The TensorFlow expected-F1 sets (`mlgen.nn.set_decisions`) against NumPy's (`mlgen.decisions.expected_f1`),
ties included, compiled with unknown batch, beam and steps."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from mlgen.decisions.expected_f1 import _rank, independent_statistics, maximize, set_statistics
from mlgen.nn import set_decisions

OPTIONS = [
    {"allow_empty": True, "max_size": None},
    {"allow_empty": False, "max_size": None},
    {"allow_empty": True, "max_size": 2},
    {"allow_empty": False, "max_size": 1},
]


@functools.cache
def compiled_beam(allow_empty, max_size, temperature):
    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None, None, None], tf.int32),
            tf.TensorSpec([None, None, None], tf.bool),
            tf.TensorSpec([None, None], tf.float32),
        ],
    )
    def decide(labels, shown, log_probs):
        return set_decisions.beam_expected_f1(
            labels, shown, log_probs, 20, temperature=temperature, allow_empty=allow_empty, max_size=max_size
        )

    return decide


@functools.cache
def compiled_independent(allow_empty, max_size, candidates):
    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.float64)])
    def decide(probs):
        return set_decisions.independent_expected_f1(
            probs, candidates=candidates, allow_empty=allow_empty, max_size=max_size
        )

    return decide


def numpy_outputs(statistics, empty, allow_empty, max_size):
    """The chosen labels as the outputs dict: highest marginal first, ties (within `TIE`): the lower column."""
    chosen, _ = maximize(statistics, empty, allow_empty=allow_empty, max_size=max_size)
    marginals = statistics.sum(axis=2)
    count = chosen.sum(axis=1)
    width = int(count.max(initial=0))
    order = _rank(np.where(chosen, marginals, -1.0))[:, :width]
    taken = np.arange(width)[None, :] < count[:, None]
    return {
        "label_ids": np.where(taken, order, -1),
        "scores": np.where(taken, np.take_along_axis(marginals, order, axis=1), 0.0),
        "num_labels": count,
    }


def assert_same_outputs(mine, expected):
    assert mine["label_ids"].dtype == tf.int32 and mine["num_labels"].dtype == tf.int32
    assert mine["scores"].dtype == tf.float64 and mine["log_prob"].dtype == tf.float64
    np.testing.assert_array_equal(mine["num_labels"].numpy(), expected["num_labels"])
    np.testing.assert_array_equal(mine["label_ids"].numpy(), expected["label_ids"])
    np.testing.assert_allclose(mine["scores"].numpy(), expected["scores"], rtol=1e-12, atol=1e-15)
    assert np.isnan(mine["log_prob"].numpy()).all() and mine["log_prob"].shape == expected["num_labels"].shape


def random_beams(rng, n_docs, beam, steps, num_labels):
    """Hypotheses full of ties: few labels, a doc's labels shared by its hypotheses, sets repeated in
    another order, empty hypotheses, repeated and very negative log-probabilities, anything after the labels."""
    labels = rng.integers(-3, num_labels, size=(n_docs, beam, steps))  # what is not shown is noise
    sizes = rng.integers(0, steps + 1, size=(n_docs, beam))
    for d in range(n_docs):
        pool = rng.choice(num_labels, size=min(num_labels, int(rng.integers(1, steps + 3))), replace=False)
        for h in range(beam):
            if h and rng.uniform() < 0.3:  # an earlier hypothesis's set in another order
                source = int(rng.integers(0, h))
                sizes[d, h] = sizes[d, source]
                labels[d, h, : sizes[d, h]] = rng.permutation(labels[d, source, : sizes[d, source]])
            else:
                sizes[d, h] = min(sizes[d, h], len(pool))
                labels[d, h, : sizes[d, h]] = rng.choice(pool, size=sizes[d, h], replace=False)
    shown = np.arange(steps)[None, None, :] < sizes[:, :, None]
    log_probs = rng.choice([-0.5, -1.0, -1.0, -2.0, -3.7, -1e9], size=(n_docs, beam))
    log_probs = np.where(rng.uniform(size=(n_docs, beam)) < 0.5, log_probs, rng.normal(-2.0, 1.0, (n_docs, beam)))
    log_probs[0] = -1e9  # every hypothesis "empty": equal weights
    return labels.astype(np.int32), shown, log_probs.astype(np.float32)


def numpy_beam(labels, shown, log_probs, num_labels, temperature, allow_empty, max_size):
    """`mlgen.decisions.rules.ArrayOps.beam_expected_f1`'s NumPy path."""
    scaled = np.asarray(log_probs, np.float64) / temperature
    weights = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    statistics, empty = set_statistics(np.where(shown, labels, -1), weights, num_labels)
    return numpy_outputs(statistics, empty, allow_empty, max_size)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", OPTIONS)
def test_the_beam_sets_are_numpys(seed, options):
    rng = np.random.default_rng(seed)
    num_labels, temperature = 10, (1.0, 0.7)[seed % 2]
    beam, steps = (5, 4) if seed < 2 else (3, 6)  # shapes the compiled function has not seen
    labels, shown, log_probs = random_beams(rng, 300, beam, steps, num_labels)
    mine = compiled_beam(options["allow_empty"], options["max_size"], temperature)(labels, shown, log_probs)
    expected = numpy_beam(labels, shown, log_probs, num_labels, temperature, **options)
    assert_same_outputs(mine, expected)


def test_beam_ties_go_to_the_smaller_set_then_the_lower_column():
    labels = np.array(
        [
            [[3, 1], [1, 3], [0, 0]],  # one set twice, in two orders: 1 and 3 tie
            [[2, 0], [0, 0], [0, 0]],  # {2} or nothing, equally likely: {2}
            [[4, 0], [2, 0], [0, 0]],  # {4} or {2}, equally likely: {2} or {4} (expected F1 0.5 each)
        ],
        np.int32,
    )
    shown = np.array([[[1, 1], [1, 1], [0, 0]], [[1, 0], [0, 0], [0, 0]], [[1, 0], [1, 0], [0, 0]]], bool)
    log_probs = np.array([[-1.0, -1.0, -1e9], [-1.0, -1.0, -1e9], [-1.0, -1.0, -1e9]], np.float32)
    decide = compiled_beam(False, 1, 1.0)  # one label: 1 and 3 tie
    assert decide(labels, shown, log_probs)["label_ids"].numpy().tolist() == [[1], [2], [2]]
    mine = compiled_beam(True, None, 1.0)(labels, shown, log_probs)
    assert mine["label_ids"].numpy().tolist() == [[1, 3], [2, -1], [2, 4]]
    np.testing.assert_allclose(mine["scores"].numpy(), [[1.0, 1.0], [0.5, 0.0], [0.5, 0.5]])
    for options in OPTIONS:
        expected = numpy_beam(labels, shown, log_probs, 5, 1.0, **options)
        assert_same_outputs(
            compiled_beam(options["allow_empty"], options["max_size"], 1.0)(labels, shown, log_probs), expected
        )


# Ties in exact arithmetic, not in floating point (tests/test_expected_f1.py's `rounding_ties`): equally
# likely sets {0, 4, 6} and {0, 4, 6, 8} (the smaller set wins); 2 in sets of 2 and 5 labels, 5 in two of 3
# (with one label, the lower column wins); each of probability 0.03, the rest on the empty set.
ROUNDING_TIES = [
    ([[0, 4, 6, -1, -1], [6, 0, 4, 8, -1], [-1, -1, -1, -1, -1]], None, [0, 4, 6]),
    ([[2, 10, -1, -1, -1], [2, 11, 12, 13, 14], [5, 15, 16, -1, -1], [5, 17, 18, -1, -1]], 1, [2]),
    ([[5, 10, -1, -1, -1], [5, 11, 12, 13, 14], [2, 15, 16, -1, -1], [2, 17, 18, -1, -1]], 1, [2]),
]


@pytest.mark.parametrize(("ids", "max_size", "expected"), ROUNDING_TIES)
def test_beam_ties_in_exact_arithmetic_are_ties(ids, max_size, expected):
    ids = np.array([ids + [[-1] * 5]], np.int32)
    n = ids.shape[1] - 1
    log_probs = np.log([[0.03] * n + [1 - 0.03 * n]]).astype(np.float32)
    mine = compiled_beam(False, max_size, 1.0)(np.maximum(ids, 0), ids >= 0, log_probs)
    assert sorted(mine["label_ids"].numpy()[0].tolist()) == expected


def test_beam_edge_shapes():
    decide = compiled_beam(True, None, 1.0)
    nothing = decide(np.zeros((0, 5, 3), np.int32), np.zeros((0, 5, 3), bool), np.zeros((0, 5), np.float32))
    assert nothing["label_ids"].shape == (0, 0) and nothing["num_labels"].shape == (0,)
    no_steps = decide(np.zeros((2, 5, 0), np.int32), np.zeros((2, 5, 0), bool), np.zeros((2, 5), np.float32))
    assert no_steps["label_ids"].shape == (2, 0) and no_steps["num_labels"].numpy().tolist() == [0, 0]
    forced = compiled_beam(False, None, 1.0)(
        np.zeros((2, 5, 0), np.int32), np.zeros((2, 5, 0), bool), np.zeros((2, 5), np.float32)
    )
    assert forced["label_ids"].numpy().tolist() == [[0], [0]]  # nothing likely: column 0, as NumPy
    np.testing.assert_array_equal(forced["scores"].numpy(), [[0.0], [0.0]])


def random_probs(rng, n_docs, num_labels):
    """Marginals with ties: rounded to a decimal, zeros and ones, a row of zeros."""
    probs = rng.uniform(size=(n_docs, num_labels)) ** 2
    probs = np.where(rng.uniform(size=probs.shape) < 0.5, np.round(probs, 1), probs)
    probs[0] = 0.0
    probs[1] = 0.5
    probs[2, :3] = 1.0
    return probs


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("candidates", [5, 16])
@pytest.mark.parametrize("options", OPTIONS)
def test_the_independent_sets_are_numpys(seed, candidates, options):
    rng = np.random.default_rng(seed)
    num_labels = (12, 7, 20)[seed]  # fewer and more labels than candidates
    probs = random_probs(rng, 200, num_labels)
    mine = compiled_independent(options["allow_empty"], options["max_size"], candidates)(probs)
    expected = numpy_outputs(*independent_statistics(probs, candidates), **options)
    assert_same_outputs(mine, expected)


def test_independent_edge_shapes_and_checks():
    decide = compiled_independent(True, None, 4)
    assert decide(np.zeros((0, 6)))["label_ids"].shape == (0, 0)
    assert decide(np.zeros((3, 0)))["num_labels"].numpy().tolist() == [0, 0, 0]
    certain = decide(np.array([[0.0, 1.0, 0.0, 1.0]]))
    assert certain["label_ids"].numpy().tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="candidates"):
        set_decisions.independent_expected_f1(np.ones((1, 2)), candidates=0)
    with pytest.raises(ValueError, match="max_size"):
        set_decisions.independent_expected_f1(np.ones((1, 2)), max_size=0)
