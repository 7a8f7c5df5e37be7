"""Greedy and beam search over a step function. Never imports the model.

A step function maps the previous label ids and the decoder state to the next
logits and state:

    step_fn(prev_ids: (rows,) int32, state: nest of (rows, ...) tensors)
        -> (logits: (rows, vocab_size), new_state: same nest)

The search feeds each step its own previous prediction. Masks applied before every
choice: PAD and BOS never; a label never twice; EOS blocked before `min_labels`
labels and forced after `max_labels`. A finished row emits PAD. Greedy search can
also be constrained to a set of allowed labels per row (`allowed`), emitting every
one of them, most probable first, before EOS: that is how training finds the order
in which the model itself ranks a document's gold labels.

Both searches return `(ids, probs, log_prob)`:
    ids: int32 `(batch, max_labels + 1)`: label ids in generation order, then EOS, then PAD;
    probs: float32 `(batch, max_labels + 1)`: each emitted id's probability under
        the masked softmax at its step (0 after EOS);
    log_prob: float32 `(batch,)`: the sequence log-probability, EOS included.

Written with `keras.ops` so that a caller's `tf.function` compiles the whole loop;
`ops.while_loop` stops as soon as every row has emitted EOS.
"""

from __future__ import annotations

from keras import ops, tree

from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID

NEG_INF = -1e9


def _masked_log_probs(logits, banned, finished, t, min_labels, max_labels, exhaust=False):
    """log-softmax over the allowed ids `(rows, vocab)`; finished rows may only emit PAD, at no cost.

    `banned` is additive, `(rows, vocab)`: 0 where allowed, `NEG_INF` (or less) where not.
    With `exhaust`, EOS is blocked in a row while any label id there is still allowed.
    """
    vocab_size = ops.shape(logits)[-1]
    columns = ops.arange(vocab_size)
    is_eos = ops.cast(ops.equal(columns, EOS_ID), "float32")  # (vocab,)
    # EOS is blocked before `min_labels`; every other id from `max_labels` on.
    step_bias = ops.where(ops.less(t, min_labels), NEG_INF * is_eos, 0.0) + ops.where(
        ops.greater_equal(t, max_labels), NEG_INF * (1.0 - is_eos), 0.0
    )
    bias = banned + step_bias[None, :]
    if exhaust:
        left = ops.any(ops.logical_and(banned == 0.0, columns[None, :] >= NUM_SPECIAL), axis=1)  # (rows,)
        left = ops.logical_and(left, ops.less(t, max_labels))  # EOS is still forced after `max_labels`
        bias = bias + ops.where(left[:, None], NEG_INF * is_eos[None, :], 0.0)
    log_probs = ops.log_softmax(ops.cast(logits, "float32") + bias, axis=-1)
    stay = ops.where(ops.equal(columns, PAD_ID), 0.0, NEG_INF)[None, :]
    return ops.where(finished[:, None], stay, log_probs)


def _write(buffer, t, values):
    """`buffer[:, t] = values` for a `(rows, steps)` buffer and a scalar tensor `t`."""
    column = ops.cast(ops.one_hot(t, ops.shape(buffer)[1]), buffer.dtype)[None, :]
    return buffer * (1 - column) + ops.cast(values, buffer.dtype)[:, None] * column


def _initial(rows, vocab_size, max_labels):
    columns = ops.arange(vocab_size)
    banned = ops.where(ops.logical_or(ops.equal(columns, PAD_ID), ops.equal(columns, BOS_ID)), NEG_INF, 0.0)
    return dict(
        prev=ops.full((rows,), BOS_ID, dtype="int32"),
        banned=ops.tile(banned[None, :], (rows, 1)),
        finished=ops.zeros((rows,), dtype="bool"),
        ids=ops.zeros((rows, max_labels + 1), dtype="int32"),
        probs=ops.zeros((rows, max_labels + 1), dtype="float32"),
    )


def _emit(loop, t, token, token_log_prob, was_finished, vocab_size):
    """Records the chosen ids; bans them from later steps; marks EOS rows finished."""
    token = ops.where(was_finished, PAD_ID, token)
    prob = ops.where(was_finished, 0.0, ops.exp(token_log_prob))
    return dict(
        prev=token,
        banned=ops.minimum(loop["banned"], NEG_INF * ops.one_hot(token, vocab_size)),
        finished=ops.logical_or(was_finished, ops.equal(token, EOS_ID)),
        ids=_write(loop["ids"], t, token),
        probs=_write(loop["probs"], t, prob),
    )


def greedy_search(step_fn, state, *, vocab_size: int, max_labels: int, min_labels: int = 0, allowed=None):
    """Picks the most probable allowed id at every step. See the module docstring.

    Args:
        step_fn: `(prev_ids, state) -> (logits, state)`.
        state: the initial decoder state, a nest of `(batch, ...)` tensors.
        vocab_size: width of the logits.
        max_labels: most labels per row (EOS is forced after them).
        min_labels: fewest labels per row (EOS is blocked before them).
        allowed: optional bool `(batch, vocab_size)`: the label ids each row may emit;
            the row then emits all of them (up to `max_labels`) before EOS.
    """
    batch = ops.shape(tree.flatten(state)[0])[0]
    loop = _initial(batch, vocab_size, max_labels)
    loop["log_prob"] = ops.zeros((batch,), dtype="float32")
    if allowed is not None:
        is_label = ops.arange(vocab_size)[None, :] >= NUM_SPECIAL
        loop["banned"] = ops.where(ops.logical_and(is_label, ops.logical_not(allowed)), NEG_INF, loop["banned"])

    def cond(t, loop, state):
        return ops.logical_and(ops.less_equal(t, max_labels), ops.logical_not(ops.all(loop["finished"])))

    def body(t, loop, state):
        logits, state = step_fn(loop["prev"], state)
        log_probs = _masked_log_probs(
            logits, loop["banned"], loop["finished"], t, min_labels, max_labels, exhaust=allowed is not None
        )
        token = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        token_log_prob = ops.max(log_probs, axis=-1)
        log_prob = loop["log_prob"] + token_log_prob
        loop = _emit(loop, t, token, token_log_prob, loop["finished"], vocab_size)
        loop["log_prob"] = log_prob
        return t + 1, loop, state

    _, loop, _ = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), loop, state))
    return loop["ids"], loop["probs"], loop["log_prob"]


def beam_search(
    step_fn, state, *, beam_size: int, vocab_size: int, max_labels: int, min_labels: int = 0, return_beams=False
):
    """Keeps the `beam_size` most probable sequences; returns the best. See the module docstring.

    Each batch row is repeated `beam_size` times (rows `b * beam_size + k`). Step 0
    expands beam 0 only. A finished hypothesis stays in the beam with its score, so
    it is returned unless `beam_size` unfinished ones score higher: with no length
    penalty this finds the most probable sequence the beam can reach.

    With `return_beams`, returns every hypothesis instead, best first: ids and probs
    `(batch, beam_size, max_labels + 1)` and log-probabilities `(batch, beam_size)`
    (`NEG_INF` or less for a slot no distinct sequence filled).
    """
    if beam_size == 1 and not return_beams:
        return greedy_search(step_fn, state, vocab_size=vocab_size, max_labels=max_labels, min_labels=min_labels)
    batch = ops.shape(tree.flatten(state)[0])[0]
    rows = batch * beam_size
    state = tree.map_structure(lambda s: ops.repeat(s, beam_size, axis=0), state)
    loop = _initial(rows, vocab_size, max_labels)
    first_beam = ops.concatenate([ops.zeros((1,)), ops.full((beam_size - 1,), NEG_INF)])
    loop["scores"] = ops.tile(first_beam[None, :], (batch, 1))  # (batch, beam)
    offsets = ops.repeat(ops.arange(batch, dtype="int32") * beam_size, beam_size)  # (rows,)

    def cond(t, loop, state):
        return ops.logical_and(ops.less_equal(t, max_labels), ops.logical_not(ops.all(loop["finished"])))

    def body(t, loop, state):
        logits, state = step_fn(loop["prev"], state)
        log_probs = _masked_log_probs(logits, loop["banned"], loop["finished"], t, min_labels, max_labels)
        candidates = ops.reshape(loop["scores"], (rows, 1)) + log_probs
        scores, flat = ops.top_k(ops.reshape(candidates, (batch, beam_size * vocab_size)), k=beam_size)
        flat = ops.cast(ops.reshape(flat, (rows,)), "int32")
        source = offsets + flat // vocab_size  # which row each new hypothesis extends
        token = flat % vocab_size
        token_log_prob = ops.take_along_axis(ops.take(log_probs, source, axis=0), token[:, None], axis=1)[:, 0]
        gathered = {key: ops.take(value, source, axis=0) for key, value in loop.items() if key != "scores"}
        state = tree.map_structure(lambda s: ops.take(s, source, axis=0), state)
        loop = _emit(gathered, t, token, token_log_prob, gathered["finished"], vocab_size)
        loop["scores"] = scores
        return t + 1, loop, state

    _, loop, _ = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), loop, state))
    if return_beams:  # top_k keeps each row's hypotheses sorted, best first
        steps = ops.shape(loop["ids"])[1]
        return (
            ops.reshape(loop["ids"], (batch, beam_size, steps)),
            ops.reshape(loop["probs"], (batch, beam_size, steps)),
            loop["scores"],
        )
    best = offsets[::beam_size] + ops.cast(ops.argmax(loop["scores"], axis=1), "int32")  # (batch,)
    return ops.take(loop["ids"], best, axis=0), ops.take(loop["probs"], best, axis=0), ops.max(loop["scores"], axis=1)


def search(
    step_fn, state, *, beam_size: int = 1, vocab_size: int, max_labels: int, min_labels: int = 0, return_beams=False
):
    """Greedy search for `beam_size == 1`, beam search above (every hypothesis with `return_beams`)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    return beam_search(
        step_fn,
        state,
        beam_size=beam_size,
        vocab_size=vocab_size,
        max_labels=max_labels,
        min_labels=min_labels,
        return_beams=return_beams,
    )
