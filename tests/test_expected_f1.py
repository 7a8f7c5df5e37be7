"""The expected-F1 maximiser (issue 27's samples-F1 rule) against brute force over every label set."""

import itertools

import numpy as np
import pytest

from mlgen.decisions.expected_f1 import maximize, set_statistics


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
