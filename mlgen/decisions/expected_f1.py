"""The label set with the largest expected example-based F1 under a distribution over label sets.

The General F-measure Maximizer (Dembczyński, Waegeman, Cheng, Hüllermeier, "An exact algorithm
for F-measure maximization", NIPS 2011): for one document with `m` labels, let
`P[i, s] = P(y_i = 1 and |y| = s)` and `P_empty = P(y = ∅)`. A prediction `h` of `k >= 1` labels
has `E[F1(y, h)] = Σ_{i in h} Δ[i, k]` with `Δ[i, k] = Σ_s P[i, s] · 2 / (s + k)`, so the best set
of each size is its `k` labels with the largest `Δ[:, k]`, and the answer is the best of those
sets or the empty set, whose expected F1 is `P_empty` (F1(∅, ∅) = 1).

`P` is `(n_docs, num_labels, max_size)` for sets of at most `max_size` labels, and only sizes up to
the number of labels the distribution ever gives (its support) are tried: a label with `Δ = 0`
adds nothing and lowers every other label's `Δ`, so a larger set is never better. A distribution
given by a search's hypotheses (a beam of 5, sets of at most a few labels) stays small.

NumPy only: `set_statistics` estimates `P` from weighted label sets (a beam's hypotheses and
their renormalised probabilities, or sampled sets), `maximize` decides.
"""

from __future__ import annotations

import numpy as np


def set_statistics(label_ids: np.ndarray, weights: np.ndarray, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """`(P, P_empty)` of the distribution that puts `weights` on the label sets `label_ids`.

    Args:
        label_ids: int `(n_docs, n_sets, max_size)`: each set's label columns, -1 after them.
        weights: `(n_docs, n_sets)`: each set's probability (each row summing to 1 for a
            distribution; a search's hypotheses renormalised over the beam).
        num_labels: the label columns.

    Returns:
        `P` `(n_docs, num_labels, max_size)`: `P[d, i, s - 1] = P(y_i = 1, |y| = s)`, and
        `P_empty` `(n_docs,)`.
    """
    label_ids = np.asarray(label_ids)
    weights = np.asarray(weights, np.float64)
    n_docs, n_sets, max_size = label_ids.shape
    shown = label_ids >= 0
    sizes = shown.sum(axis=2)  # (n_docs, n_sets)
    statistics = np.zeros((n_docs, num_labels, max(max_size, 1)))
    docs, sets, _ = np.nonzero(shown)
    np.add.at(statistics, (docs, label_ids[shown], sizes[docs, sets] - 1), weights[docs, sets])
    return statistics, np.where(sizes == 0, weights, 0.0).sum(axis=1)


def maximize(statistics: np.ndarray, empty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The set of largest expected F1 for every document, and that expected F1.

    Args:
        statistics: `P` `(n_docs, num_labels, max_size)` (`set_statistics`).
        empty: `P_empty` `(n_docs,)`.

    Returns:
        `(chosen, expected)`: bool `(n_docs, num_labels)` and `(n_docs,)`. Ties go to the
        smaller set, then to the lower label column.
    """
    statistics = np.asarray(statistics, np.float64)
    n_docs, num_labels, max_size = statistics.shape
    if not num_labels or not n_docs:
        return np.zeros((n_docs, num_labels), bool), np.asarray(empty, np.float64)
    sizes = np.arange(1, max_size + 1)
    k_limit = max(1, int(np.count_nonzero(statistics.sum(axis=2) > 0, axis=1).max()))  # the widest support
    ks = np.arange(1, k_limit + 1)
    gain = 2.0 / (sizes[:, None] + ks[None, :])  # (max_size, k): 2 / (s + k)
    delta = statistics @ gain  # (n_docs, num_labels, k)
    order = np.argsort(-delta, axis=1, kind="stable")  # per k, labels by Δ, ties: the lower column
    ranked = np.take_along_axis(delta, order, axis=1)
    best_of_size = np.cumsum(ranked, axis=1)[:, ks - 1, ks - 1]  # (n_docs, k): the top k's sum at k
    k_best = np.argmax(best_of_size, axis=1)  # ties: the smaller set
    expected = best_of_size[np.arange(n_docs), k_best]
    top = order[np.arange(n_docs)[:, None], np.arange(k_limit)[None, :], k_best[:, None]]  # (n_docs, k)
    take = np.arange(k_limit)[None, :] <= k_best[:, None]  # each document's best k of them
    chosen = np.zeros((n_docs, num_labels), bool)
    chosen[np.nonzero(take)[0], top[take]] = True
    nothing = empty > expected  # the empty set wins only when strictly better
    chosen[nothing] = False
    return chosen, np.where(nothing, empty, expected)
