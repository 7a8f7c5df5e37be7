"""The label set of largest expected F1 (`mlgen.decisions.expected_f1`) in TensorFlow.

The General F-measure Maximizer as `mlgen.decisions.expected_f1.maximize` runs it, over two
distributions over label sets, with the same sets (ties included, `TIE` apart or closer: the
smaller set, then the lower label column; the empty set only when better):

    beam_expected_f1         a beam search's hypotheses, weighted by their renormalised probabilities
                             (`maximize(*set_statistics(...))`);
    independent_expected_f1  labels independent with given marginals, the `candidates` most probable
                             of each document (`maximize(*independent_statistics(...))`).

Neither builds a `(batch, num_labels, ...)` tensor: each works on a few items per document (a
beam's label slots, or the most probable labels), each with its label column, its
`Δ[k] = Σ_s P(y_i = 1, |y| = s) · 2 / (s + k)` for the set sizes `k` and its marginal
probability, and `_decide` picks the best `k` of them. Written for a compiled `tf.function`
(`autograph=False`): no Python control flow on tensor values; batch, beam and steps may be
unknown when it is traced. Everything is float64. Sums that decide ties run in a fixed order
(a loop, not a matrix product), so items with the same terms get bit-equal `Δ`.

Both return an outputs dict (`mlgen.nn.prediction`'s):
    label_ids   int32 `(batch, k)`: label columns, highest score first (ties: the lower column),
                -1 after the document's labels; `k` the most labels any document got (>= 0);
    scores      float64 `(batch, k)`: each label's marginal probability under the distribution,
                0 after the labels;
    num_labels  int32 `(batch,)`;
    log_prob    float64 `(batch,)`: NaN.
"""

from __future__ import annotations

import math

import tensorflow as tf

from mlgen.decisions.expected_f1 import CANDIDATES, TIE


def beam_expected_f1(
    labels, shown, log_probs, num_labels=None, temperature: float = 1.0, allow_empty: bool = True, max_size=None
) -> dict:
    """The expected-F1 set under a beam's hypotheses, weighted by `softmax(log_probs / temperature)`.

    Works on the `beam * steps` slots of each document: slot `j` of label `i` has
    `Δ[j, k] = Σ_h count(i in h) · w[h] · 2 / (|h| + k)` and counts once (its first slot).

    Args:
        labels: int `(batch, beam, steps)`: each hypothesis's label columns (anything where not shown).
        shown: bool `(batch, beam, steps)`: the slots that hold a label of their hypothesis.
        log_probs: float `(batch, beam)`: each hypothesis's log-probability (an empty beam slot's
            very negative, e.g. -1e9: weight 0).
        num_labels: unused (the label columns come from `labels`); for the callers' symmetry.
        temperature: the weights' softmax temperature (> 0).
        allow_empty: False: never the empty set.
        max_size: sets of at most that many labels (>= 1); None: any size.

    Returns:
        The outputs dict (module docstring).
    """
    del num_labels
    _check_max_size(max_size)
    labels = tf.convert_to_tensor(labels)
    batch = tf.shape(labels)[0]
    beam = tf.shape(labels)[1]
    slots = tf.reshape(tf.cast(labels, tf.int32), [batch, -1])  # (batch, n): n = beam * steps
    shown = tf.convert_to_tensor(shown, tf.bool)
    slot_shown = tf.reshape(shown, [batch, -1])
    n = tf.shape(slots)[1]

    scaled = tf.cast(log_probs, tf.float64) / temperature
    weights = _exp(scaled - tf.reduce_max(scaled, axis=1, keepdims=True))
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)  # (batch, beam)
    sizes = tf.reduce_sum(tf.cast(shown, tf.float64), axis=2)  # (batch, beam)
    empty = tf.reduce_sum(tf.where(sizes == 0, weights, tf.zeros_like(weights)), axis=1)  # (batch,)

    same = (slots[:, :, None] == slots[:, None, :]) & slot_shown[:, :, None] & slot_shown[:, None, :]  # (batch, n, n)
    before = tf.range(n)[None, :] < tf.range(n)[:, None]  # (n, n): slot j' precedes slot j
    first = slot_shown & ~tf.reduce_any(same & before, axis=2)  # (batch, n): a label's first slot
    counts = tf.reduce_sum(tf.reshape(tf.cast(same, tf.int32), [batch, n, beam, -1]), axis=3)
    counts = tf.cast(counts, tf.float64)  # (batch, n, beam): how often slot j's label is in hypothesis h

    def add_hypothesis(h, marginal):
        return h + 1, marginal + counts[:, :, h] * weights[:, h, None]

    _, marginal = tf.while_loop(
        lambda h, _: h < beam, add_hypothesis, (tf.constant(0), tf.zeros([batch, n], tf.float64))
    )
    valid, slots, marginal, counts = _valid_first(first & (marginal > 0), slots, marginal, counts)
    n = tf.shape(slots)[1]  # (batch, n): now the labels of positive probability, by column, and one more
    ks = _set_sizes(valid, max_size)  # (K,)
    gain = 2.0 / (sizes[:, :, None] + ks)  # (batch, beam, K)

    def add_gain(h, delta):
        return h + 1, delta + counts[:, :, h, None] * (weights[:, h, None, None] * gain[:, h, None, :])

    _, delta = tf.while_loop(
        lambda h, _: h < beam,
        add_gain,
        (tf.constant(0), tf.zeros([batch, n, tf.size(ks)], tf.float64)),
    )
    return _decide(delta, valid, slots, marginal, empty, allow_empty)


def independent_expected_f1(probs, candidates: int = CANDIDATES, allow_empty: bool = True, max_size=None) -> dict:
    """The expected-F1 set of labels independent with marginals `probs`, among each document's
    `candidates` most probable (ties: the lower column; the others count as probability 0).

    Args:
        probs: float `(batch, num_labels)` in [0, 1].
        candidates: the labels kept per document (>= 1).
        allow_empty: False: never the empty set.
        max_size: sets of at most that many labels (>= 1); None: any size.

    Returns:
        The outputs dict (module docstring).
    """
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, not {candidates}")
    _check_max_size(max_size)
    probs = tf.cast(probs, tf.float64)
    batch = tf.shape(probs)[0]
    m = candidates
    # Columns of probability 0 after the labels, so that there are `m` (they change nothing); top_k
    # puts equal values in column order, as NumPy's stable sort does.
    padded = tf.concat([probs, tf.zeros([batch, m], tf.float64)], axis=1)
    p, columns = tf.math.top_k(padded, k=m)  # (batch, m): most probable first

    # q[d, i, c]: the probability that c of the candidates other than i occur, candidate by candidate
    # in rank order, i's own step adding probability 0: `expected_f1._poisson_binomial_without_each`.
    q = tf.one_hot(tf.zeros([batch, m], tf.int32), m, dtype=tf.float64)  # (batch, m, m)
    none = tf.ones([batch], tf.float64)
    for r in range(m):
        added = tf.where(tf.range(m) == r, tf.zeros_like(p), p[:, r : r + 1])[:, :, None]  # (batch, m, 1)
        shifted = tf.pad(q[:, :, :-1], [[0, 0], [0, 0], [1, 0]])
        q = q * (1.0 - added) + shifted * added
        none = none * (1.0 - p[:, r])
    statistics = p[:, :, None] * q  # (batch, m, m): P(y_i = 1, |y| = s) at s - 1

    valid = p > 0
    ks = _set_sizes(valid, max_size)  # (K,)
    delta = tf.zeros([batch, m, tf.size(ks)], tf.float64)
    for s in range(m):
        delta = delta + statistics[:, :, s, None] * (2.0 / (s + 1 + ks))
    return _decide(delta, valid, columns, tf.reduce_sum(statistics, axis=2), none, allow_empty)


def _check_max_size(max_size):
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be at least 1 or None, not {max_size}")


def _exp(x):
    """`exp(x)` for float64 `(batch, beam)`, equal inputs giving equal outputs: TensorFlow computes
    the last few elements of a tensor one by one, not in SIMD packets, which can differ in the last
    bit; this exponentiates 16 copies and keeps the first, never one of the last few."""
    return tf.exp(tf.tile(x[:, :, None], [1, 1, 16]))[:, :, 0]


def _set_sizes(valid, max_size):
    """The set sizes worth trying, float64 `(K,)` = 1..K: up to the most labels of positive probability
    of any document (at least 1), at most `max_size` (`maximize`'s `k_limit`)."""
    widest = tf.maximum(_most_valid(valid), 1)
    if max_size is not None:
        widest = tf.minimum(widest, max_size)
    return tf.cast(tf.range(1, widest + 1), tf.float64)


def _valid_first(valid, columns, *more):
    """The valid items of each document by label column, then invalid ones: as many as the document
    with the most valid items needs to have one more (sorting costs the most, by the items).

    Args:
        valid: bool `(batch, n)`.
        columns: int `(batch, n)`: each item's label column.
        *more: `(batch, n, ...)`: more of each item's.

    Returns:
        `(valid, columns, *more)`, `(batch, n', ...)`, `n'` = the most valid items of a document + 1.
    """
    pad = [[0, 0], [0, 1]]  # one more, invalid item: no document is without items
    valid, columns = tf.pad(valid, pad), tf.pad(tf.cast(columns, tf.int32), pad)
    more = [tf.pad(x, pad + [[0, 0]] * (len(x.shape) - 2)) for x in more]
    key = tf.where(valid, -tf.cast(columns, tf.float64), -math.inf)
    _, order = tf.math.top_k(key, k=_most_valid(valid) + 1)  # equal keys in index order
    return tuple(tf.gather(x, order, batch_dims=1) for x in (valid, columns, *more))


def _most_valid(valid):
    """The most valid items of any document (0 without documents) of `valid` bool `(batch, n)`."""
    return tf.reduce_max(tf.concat([tf.reduce_sum(tf.cast(valid, tf.int32), axis=1), [0]], axis=0))


def _rank(values, k):
    """`mlgen.decisions.expected_f1._rank` on the last axis: the `k` largest of `values` `(..., n)`
    (each >= 0 or -inf) and their indices `(..., k)`, a value within `TIE` of the one before it
    counting as equal to it: equal values by index."""
    n = tf.shape(values)[-1]
    batch_dims = len(values.shape) - 1
    ranked, order = tf.math.top_k(values, k=n)  # equal values in index order
    smaller = ranked[..., 1:] < ranked[..., :-1]
    new_value = ranked[..., 1:] < ranked[..., :-1] * (1 - TIE)

    def by_index_within_ties():
        tied = tf.cumsum(tf.cast(tf.pad(new_value, [[0, 0]] * batch_dims + [[1, 0]]), tf.int32), axis=-1)
        _, within = tf.math.top_k(-tf.cast(tied * n + order, tf.float64), k=k)  # runs of equal values by index
        return tf.gather(ranked, within, batch_dims=batch_dims), tf.gather(order, within, batch_dims=batch_dims)

    # Sorting again costs as much as sorting: only when some values differ by less than TIE.
    near = tf.reduce_any(smaller & ~new_value)
    return tf.cond(near, by_index_within_ties, lambda: (ranked[..., :k], order[..., :k]))


def _decide(delta, valid, columns, marginal, empty, allow_empty: bool) -> dict:
    """The best set of items per document, as the outputs dict.

    Args:
        delta: float64 `(batch, n, K)`: each item's `Δ` for the set sizes 1..K (`_set_sizes`).
        valid: bool `(batch, n)`: the items that may be chosen, one per label, probability > 0.
        columns: int32 `(batch, n)`: each item's label column.
        marginal: float64 `(batch, n)`: each item's marginal probability (its score).
        empty: float64 `(batch,)`: `P_empty`.
        allow_empty: False: never the empty set.
    """
    batch = tf.shape(delta)[0]
    num_sizes = tf.shape(delta)[2]
    neg_inf = tf.constant(-math.inf, tf.float64)

    # Valid items in column order: top_k puts equal values in index order, so Δ ties go to the lower column.
    valid, columns, delta, marginal = _valid_first(valid, columns, delta, marginal)

    ranked = tf.transpose(tf.where(valid[:, :, None], delta, neg_inf), [0, 2, 1])  # (batch, K, n)
    top, top_items = _rank(ranked, num_sizes)  # (batch, K, K): per size k, the best items
    best_of_size = tf.linalg.diag_part(tf.cumsum(top, axis=2))  # (batch, K): the best k's sum at k
    best = tf.reduce_max(best_of_size, axis=1, keepdims=True)  # (batch, 1)
    sizes = tf.range(num_sizes)
    tied = best_of_size >= best * (1 - TIE)  # -inf with no valid item: k = 1
    k_best = tf.reduce_min(tf.where(tied, sizes[None, :], num_sizes), axis=1)  # ties: the smaller set
    expected = tf.gather(best_of_size, k_best, batch_dims=1)
    nothing_likely = tf.math.is_inf(expected)  # no valid item: every set of one label ties at 0
    expected = tf.where(nothing_likely, tf.zeros_like(expected), expected)
    if allow_empty:
        nothing = empty * (1 - TIE) > expected  # the empty set only when better
    else:
        nothing = tf.zeros([batch], tf.bool)
    count = tf.where(nothing, 0, k_best + 1)  # (batch,)

    items = tf.gather(top_items, k_best, batch_dims=1)  # (batch, K): the best k_best + 1 first
    chosen_columns = tf.where(nothing_likely[:, None], 0, tf.gather(columns, items, batch_dims=1))
    scores = tf.where(nothing_likely[:, None], tf.zeros([], tf.float64), tf.gather(marginal, items, batch_dims=1))
    taken = sizes[None, :] < count[:, None]  # (batch, K)

    # Highest score first, ties: the lower column.
    _, order = tf.math.top_k(tf.where(taken, -tf.cast(chosen_columns, tf.float64), neg_inf), k=num_sizes)
    chosen_columns, scores = (tf.gather(x, order, batch_dims=1) for x in (chosen_columns, scores))
    _, order = _rank(tf.where(taken, scores, neg_inf), num_sizes)
    chosen_columns, scores = (tf.gather(x, order, batch_dims=1) for x in (chosen_columns, scores))

    width = tf.reduce_max(tf.concat([count, [0]], axis=0))
    taken = taken[:, :width]  # `taken` is a prefix, so its order is unchanged
    return {
        "label_ids": tf.where(taken, chosen_columns[:, :width], -1),
        "scores": tf.where(taken, scores[:, :width], tf.zeros([], tf.float64)),
        "num_labels": tf.cast(count, tf.int32),
        "log_prob": tf.fill([batch], tf.constant(math.nan, tf.float64)),
    }
