"""The expected-F1 maximiser (issue 27's samples-F1 rule) against brute force over every label set."""

import itertools

import numpy as np
import pytest

from mlgen.decisions.expected_f1 import independent_statistics, maximize, set_statistics


def f1(gold: frozenset, predicted: frozenset) -> float:
    if not gold and not predicted:
        return 1.0
    return 2 * len(gold & predicted) / (len(gold) + len(predicted))


def random_distribution(rng, num_labels, n_sets, max_size):
    """Distinct label sets (the empty one possibly among them) and their probabilities."""
    sets = set()
    while len(sets) < n_sets:
        size = int(rng.integers(0, max_size + 1))
        sets.add(frozenset(rng.choice(num_labels, size, replace=False).tolist()))
    sets = sorted(sets, key=sorted)
    return sets, rng.dirichlet(np.ones(len(sets)))


def as_arrays(distributions, max_size):
    """The sets as `(n_docs, n_sets, max_size)` label columns (-1 after them) and their weights."""
    n_sets = max(len(sets) for sets, _ in distributions)
    ids = np.full((len(distributions), n_sets, max_size), -1)
    weights = np.zeros((len(distributions), n_sets))
    for d, (sets, probs) in enumerate(distributions):
        for j, (labels, p) in enumerate(zip(sets, probs)):
            ids[d, j, : len(labels)] = sorted(labels)
            weights[d, j] = p
    return ids, weights


@pytest.mark.parametrize("seed", range(5))
def test_the_chosen_set_has_the_largest_expected_f1_of_all_sets(seed):
    rng = np.random.default_rng(seed)
    num_labels, max_size = 6, 4
    distributions = [random_distribution(rng, num_labels, int(rng.integers(1, 8)), max_size) for _ in range(20)]
    chosen, expected = maximize(*set_statistics(*as_arrays(distributions, max_size), num_labels))
    for d, (sets, probs) in enumerate(distributions):

        def expectation(h):
            return sum(p * f1(y, h) for y, p in zip(sets, probs))

        every_set = (frozenset(h) for k in range(num_labels + 1) for h in itertools.combinations(range(num_labels), k))
        best = max(expectation(h) for h in every_set)
        mine = frozenset(np.flatnonzero(chosen[d]).tolist())
        assert expectation(mine) == pytest.approx(best)
        assert expected[d] == pytest.approx(best)


def test_a_certain_set_is_chosen_and_the_empty_set_when_it_is_likely():
    ids = np.array([[[0, 2, -1], [-1, -1, -1]], [[1, -1, -1], [-1, -1, -1]]])
    chosen, expected = maximize(*set_statistics(ids, np.array([[1.0, 0.0], [0.2, 0.8]]), num_labels=3))
    assert chosen.tolist() == [[True, False, True], [False, False, False]]
    np.testing.assert_allclose(expected, [1.0, 0.8])


def test_the_statistics_of_weighted_sets():
    ids = np.array([[[0, 1], [1, -1], [-1, -1]]])
    statistics, empty = set_statistics(ids, np.array([[0.5, 0.3, 0.2]]), num_labels=3)
    assert statistics.shape == (1, 3, 2)
    np.testing.assert_allclose(statistics[0], [[0.0, 0.5], [0.3, 0.5], [0.0, 0.0]])  # P(y_i = 1, |y| = s)
    np.testing.assert_allclose(empty, [0.2])


def test_a_set_larger_than_any_in_the_distribution_can_be_best():
    # Five equally likely single labels: one label has expected F1 0.2, all five 1/3.
    ids = np.arange(5).reshape(1, 5, 1)
    chosen, expected = maximize(*set_statistics(ids, np.full((1, 5), 0.2), num_labels=6))
    assert chosen.tolist() == [[True] * 5 + [False]]
    np.testing.assert_allclose(expected, [1 / 3])


def brute_force_best(sets, probs, num_labels, allow_empty=True, max_size=None):
    """The largest expected F1 over every allowed set."""
    sizes = range(0 if allow_empty else 1, (num_labels if max_size is None else max_size) + 1)
    return max(
        sum(p * f1(y, frozenset(h)) for y, p in zip(sets, probs))
        for k in sizes
        for h in itertools.combinations(range(num_labels), k)
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("allow_empty", "max_size"), [(False, None), (True, 2), (False, 1), (False, 3)])
def test_the_empty_set_and_large_sets_can_be_ruled_out(seed, allow_empty, max_size):
    rng = np.random.default_rng(seed)
    num_labels = 6
    distributions = [random_distribution(rng, num_labels, int(rng.integers(1, 8)), 4) for _ in range(20)]
    statistics, empty = set_statistics(*as_arrays(distributions, 4), num_labels)
    chosen, expected = maximize(statistics, empty, allow_empty=allow_empty, max_size=max_size)
    if not allow_empty:
        assert chosen.any(axis=1).all()
    if max_size is not None:
        assert (chosen.sum(axis=1) <= max_size).all()
    for d, (sets, probs) in enumerate(distributions):
        mine = frozenset(np.flatnonzero(chosen[d]).tolist())
        best = brute_force_best(sets, probs, num_labels, allow_empty, max_size)
        assert sum(p * f1(y, mine) for y, p in zip(sets, probs)) == pytest.approx(best)
        assert expected[d] == pytest.approx(best)


def test_the_defaults_allow_every_set():
    statistics, empty = set_statistics(np.array([[[0, 1], [-1, -1]]]), np.array([[0.4, 0.6]]), num_labels=3)
    for options in ({}, {"allow_empty": True, "max_size": None}):
        chosen, expected = maximize(statistics, empty, **options)
        assert chosen.tolist() == [[False, False, False]]
        np.testing.assert_allclose(expected, [0.6])
    chosen, expected = maximize(statistics, empty, allow_empty=False)
    assert chosen.tolist() == [[True, True, False]]
    np.testing.assert_allclose(expected, [0.4])
    chosen, expected = maximize(statistics, empty, allow_empty=False, max_size=1)
    assert chosen.tolist() == [[True, False, False]]  # a tie: the lower column
    np.testing.assert_allclose(expected, [0.4 * 2 / 3])
    with pytest.raises(ValueError, match="max_size"):
        maximize(statistics, empty, max_size=0)


def test_a_label_is_given_even_when_no_label_is_likely():
    # Every hypothesis empty, or holding labels of probability 0: label column 0 (every label ties at 0).
    ids = np.array([[[-1, -1], [-1, -1]], [[2, -1], [-1, -1]]])
    statistics, empty = set_statistics(ids, np.array([[0.5, 0.5], [0.0, 1.0]]), num_labels=3)
    chosen, expected = maximize(statistics, empty, allow_empty=False)
    assert chosen.tolist() == [[True, False, False]] * 2
    np.testing.assert_allclose(expected, [0.0, 0.0])


def independent_distribution(p):
    """Every subset of labels independent with marginals `p` `(m,)` and its probability."""
    sets = [frozenset(h) for k in range(len(p) + 1) for h in itertools.combinations(range(len(p)), k)]
    probs = [np.prod([p[i] if i in y else 1 - p[i] for i in range(len(p))]) for y in sets]
    return sets, np.array(probs)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("candidates", [6, 3, 16])
def test_the_statistics_of_independent_labels_against_every_set(seed, candidates):
    rng = np.random.default_rng(seed)
    num_labels = 6
    probs = rng.uniform(size=(8, num_labels))
    probs[0] = [0.5, 0.5, 0.0, 1.0, 0.25, 0.5]  # ties, a certain label and an impossible one
    probs[1] = 0.0
    statistics, empty = independent_statistics(probs, candidates)
    m = min(candidates, num_labels)
    assert statistics.shape == (8, num_labels, m)
    for d in range(len(probs)):
        kept = np.argsort(-probs[d], kind="stable")[:m]
        restricted = np.where(np.isin(np.arange(num_labels), kept), probs[d], 0.0)
        sets, weights = independent_distribution(restricted)
        expected_p, expected_empty = set_statistics(*as_arrays([(sets, weights)], num_labels), num_labels)
        np.testing.assert_allclose(statistics[d], expected_p[0, :, :m], atol=1e-12)
        assert (expected_p[0, :, m:] == 0).all()  # no set is larger than the candidates
        np.testing.assert_allclose(empty[d], expected_empty[0], atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_the_best_set_of_independent_labels_is_a_most_probable_few(seed):
    rng = np.random.default_rng(seed)
    num_labels = 6
    probs = rng.uniform(size=(20, num_labels)) ** 3
    chosen, expected = maximize(*independent_statistics(probs, candidates=num_labels))
    for d in range(len(probs)):
        k = int(chosen[d].sum())
        assert chosen[d, np.argsort(-probs[d], kind="stable")[:k]].all()  # top-k by marginal
        sets, weights = independent_distribution(probs[d])
        best = brute_force_best(sets, weights, num_labels)
        assert expected[d] == pytest.approx(best)
        assert sum(p * f1(y, frozenset(np.flatnonzero(chosen[d]).tolist())) for y, p in zip(sets, weights)) == (
            pytest.approx(best)
        )


def test_independent_statistics_of_no_labels_and_few_candidates():
    statistics, empty = independent_statistics(np.zeros((2, 0)))
    assert statistics.shape == (2, 0, 0)
    np.testing.assert_allclose(empty, [1.0, 1.0])
    statistics, empty = independent_statistics(np.array([[0.1, 0.9, 0.5]]), candidates=1)
    np.testing.assert_allclose(statistics[0], [[0.0], [0.9], [0.0]])
    np.testing.assert_allclose(empty, [0.1])
    with pytest.raises(ValueError, match="candidates"):
        independent_statistics(np.ones((1, 2)), candidates=0)


def rounding_ties():
    """Sets whose expected F1s tie in exact arithmetic but not in floating point, and the sets that
    the tie rules choose: sets of probability 0.03 each (with TIE = 0 the first two fail), the rest empty."""
    # {0, 4, 6}, {0, 4, 6, 8}: 3 · (2/6 + 2/7) = 3 · (2/7 + 2/8) + 2/8: the smaller set.
    smaller = ([[0, 4, 6, -1, -1], [6, 0, 4, 8, -1], [-1, -1, -1, -1, -1]], None, [0, 4, 6])
    # 2 in sets of 2 and 5 labels, 5 in two of 3: 2/3 + 2/6 = 2/4 + 2/4: the lower column, either way.
    lower = [
        ([[2, 10, -1, -1, -1], [2, 11, 12, 13, 14], [5, 15, 16, -1, -1], [5, 17, 18, -1, -1]], 1, [2]),
        ([[5, 10, -1, -1, -1], [5, 11, 12, 13, 14], [2, 15, 16, -1, -1], [2, 17, 18, -1, -1]], 1, [2]),
    ]
    return [smaller, *lower]


@pytest.mark.parametrize(("ids", "max_size", "expected"), rounding_ties())
def test_ties_in_exact_arithmetic_are_ties(ids, max_size, expected):
    ids = np.array([ids + [[-1] * 5]])
    weights = np.array([[0.03] * (len(ids[0]) - 1) + [1 - 0.03 * (len(ids[0]) - 1)]])
    chosen, _ = maximize(*set_statistics(ids, weights, num_labels=19), allow_empty=False, max_size=max_size)
    assert np.flatnonzero(chosen[0]).tolist() == expected
