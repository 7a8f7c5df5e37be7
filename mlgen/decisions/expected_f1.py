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
their renormalised probabilities, or sampled sets), `independent_statistics` computes it for
labels independent with given marginals, `maximize` decides. `mlgen.nn.set_decisions` is the
TensorFlow twin of `maximize` over either.
"""

from __future__ import annotations

import numpy as np

# Relative: expected F1s closer than this are equal. Sizes and the empty set tie exactly in theory
# more often than one would think (equal weights, sizes 3 and 4: 3 · (2/6 + 2/7) = 3 · (2/7 + 2/8) + 2/8),
# and rounding would break those ties either way, differently in NumPy and TensorFlow.
TIE = 1e-12
# The labels of each document the independence-based maximiser considers (`independent_statistics`).
CANDIDATES = 16


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


def independent_statistics(probs: np.ndarray, candidates: int = CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """`(P, P_empty)` of labels independent with marginals `probs`, restricted to the likeliest.

    Under independence the optimal set is the `k` labels of largest marginal for some `k`
    (Ye, Chai, Lee, Chieu, "Optimizing F-measures: a tale of two approaches", ICML 2012), so
    only each document's `candidates` most probable labels (ties: the lower column) are kept
    and the others are treated as probability 0: their mass is ignored. Exact for the rest:
    `P(y_i = 1, |y| = s) = p_i · P(|y_{-i}| = s - 1)`, the count of the other candidates being
    Poisson-binomial, by a dynamic program over the candidates in rank order (`O(candidates²)`
    per label; vectorised over documents and labels).

    Args:
        probs: `(n_docs, num_labels)` in [0, 1].
        candidates: the labels kept per document (>= 1).

    Returns:
        `P` `(n_docs, num_labels, m)`, `m = min(candidates, num_labels)`, zero outside each
        document's candidates, and `P_empty` `(n_docs,)`: the probability of none of them.
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, not {candidates}")
    probs = np.asarray(probs, np.float64)
    n_docs, num_labels = probs.shape
    m = min(candidates, num_labels)
    columns = np.argsort(-probs, axis=1, kind="stable")[:, :m]  # (n_docs, m): most probable first
    p = np.take_along_axis(probs, columns, axis=1)
    others, empty = _poisson_binomial_without_each(p)
    statistics = np.zeros((n_docs, num_labels, m))
    np.put_along_axis(statistics, columns[:, :, None], p[:, :, None] * others, axis=1)
    return statistics, empty


def _poisson_binomial_without_each(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For probabilities `p` `(n_docs, m)`: `(q, none)`, `q` `(n_docs, m, m)` with `q[d, i, c]` the
    probability that `c` of the others than `i` occur, and `none` `(n_docs,)` that none occurs.

    Each step adds one candidate, in order; candidate `i` is added to its own row with
    probability 0, which changes nothing, so equal probabilities (adjacent in rank order) get
    bitwise-equal rows. `mlgen.nn.set_decisions` computes the same in the same order.
    """
    n_docs, m = p.shape
    q = np.zeros((n_docs, m, m))
    q[:, :, :1] = 1.0  # none of the others before any is added
    none = np.ones(n_docs)
    for r in range(m):
        added = np.where(np.arange(m) == r, 0.0, p[:, r : r + 1])[:, :, None]  # (n_docs, m, 1)
        shifted = np.concatenate([np.zeros((n_docs, m, 1)), q[:, :, :-1]], axis=2)
        q = q * (1.0 - added) + shifted * added
        none = none * (1.0 - p[:, r])
    return q, none


def maximize(
    statistics: np.ndarray, empty: np.ndarray, *, allow_empty: bool = True, max_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The set of largest expected F1 for every document, and that expected F1.

    Args:
        statistics: `P` `(n_docs, num_labels, n_sizes)` (`set_statistics`, `independent_statistics`).
        empty: `P_empty` `(n_docs,)`.
        allow_empty: False: the empty set is never chosen (a model that must give a label).
            A document whose distribution gives no label a positive probability then gets
            label column 0 (every set of one label has expected F1 0; ties: the lower column).
        max_size: sets of at most that many labels (>= 1); None: any size.

    Returns:
        `(chosen, expected)`: bool `(n_docs, num_labels)` and `(n_docs,)`. Ties go to the
        smaller set (expected F1s within `TIE` of each other tie), then to the lower label
        column; the empty set wins only when better by more than `TIE`. Without label
        columns, the empty set.
    """
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be at least 1 or None, not {max_size}")
    statistics = np.asarray(statistics, np.float64)
    n_docs, num_labels, sizes_given = statistics.shape
    if not num_labels or not n_docs:
        return np.zeros((n_docs, num_labels), bool), np.asarray(empty, np.float64)
    sizes = np.arange(1, sizes_given + 1)
    support = statistics.sum(axis=2) > 0  # (n_docs, num_labels)
    widest = max(1, int(support.sum(axis=1).max()))  # the widest support
    # Each document's labels of positive probability by column, then the others by column, as many as
    # the widest support: the others have Δ = 0 and can only be chosen when all have (column 0 first).
    kept = np.argsort(~support, axis=1, kind="stable")[:, :widest]  # (n_docs, widest)
    statistics = np.take_along_axis(statistics, kept[:, :, None], axis=1)
    k_limit = widest if max_size is None else min(widest, max_size)
    ks = np.arange(1, k_limit + 1)
    gain = 2.0 / (sizes[:, None] + ks[None, :])  # (n_sizes, k): 2 / (s + k)
    delta = np.zeros((n_docs, widest, k_limit))  # Δ: size by size, so equal rows get equal Δ (BLAS need not)
    for s in range(sizes_given):
        delta += statistics[:, :, s, None] * gain[s]
    order = _rank(delta)  # per k, labels by Δ, ties: the lower column
    ranked = np.take_along_axis(delta, order, axis=1)
    best_of_size = np.cumsum(ranked, axis=1)[:, ks - 1, ks - 1]  # (n_docs, k): the top k's sum at k
    best = best_of_size.max(axis=1, keepdims=True)
    k_best = np.argmax(best_of_size >= best * (1 - TIE), axis=1)  # ties: the smaller set
    expected = best_of_size[np.arange(n_docs), k_best]
    top = order[np.arange(n_docs)[:, None], np.arange(k_limit)[None, :], k_best[:, None]]  # (n_docs, k)
    top = np.take_along_axis(kept, top, axis=1)  # label columns
    take = np.arange(k_limit)[None, :] <= k_best[:, None]  # each document's best k of them
    chosen = np.zeros((n_docs, num_labels), bool)
    chosen[np.nonzero(take)[0], top[take]] = True
    nothing = (empty * (1 - TIE) > expected) & allow_empty  # the empty set only when better by more than TIE
    chosen[nothing] = False
    return chosen, np.where(nothing, empty, expected)


def _rank(values: np.ndarray) -> np.ndarray:
    """The indices that sort `values` `(n, m, ...)` >= 0 along axis 1 from the largest, a value within
    `TIE` of the one before it counting as equal to it: equal values by index."""
    order = np.argsort(-values, axis=1, kind="stable")
    ranked = np.take_along_axis(values, order, axis=1)
    new_value = np.zeros(values.shape, np.int64)
    new_value[:, 1:] = ranked[:, 1:] < ranked[:, :-1] * (1 - TIE)
    tied = np.cumsum(new_value, axis=1)  # (n, m, ...): runs of equal values
    within = np.argsort(tied * values.shape[1] + order, axis=1, kind="stable")
    return np.take_along_axis(order, within, axis=1)


def outputs(chosen: np.ndarray, marginals: np.ndarray) -> dict:
    """A decision's outputs dict (`mlgen.decisions.rules`) of the sets `chosen` (bool `(n_docs,
    num_labels)`), each label scored by its `marginals` probability, most probable first (within
    `TIE`: the lower column first, as `mlgen.nn.set_decisions` orders them)."""
    chosen = np.asarray(chosen, bool)
    count = chosen.sum(axis=1)
    width = int(count.max(initial=0))
    order = _rank(np.where(chosen, np.asarray(marginals, np.float64), -1.0))[:, :width]  # the chosen first
    shown = np.arange(width)[None, :] < count[:, None]
    return {
        "label_ids": np.where(shown, order, -1),
        "scores": np.where(shown, np.take_along_axis(np.asarray(marginals, np.float64), order, axis=1), 0.0),
        "num_labels": count,
        "log_prob": np.full(len(chosen), np.nan),
    }
