"""Search strategies over a step function, and the one loop that runs them. Never imports the model.

A step function maps the previous label ids and the decoder state to the next
logits and state:

    step_fn(prev_ids: (rows,) int32, state: nest of (rows, ...) tensors)
        -> (logits: (rows, vocab_size), new_state: same nest)

`generate(step_fn, state, search, ...)` is the loop. It feeds each step its own
previous prediction and, before every choice, masks the logits into log-probabilities
by rules every strategy shares: PAD and BOS never; a label never twice; EOS blocked
before `min_labels` labels and forced after `max_labels`; a finished row emits PAD, at
no cost. Then it asks the strategy, a `Search`, which ids to emit (`Search.step`, as
fairseq's `search.py` does), and records them. Strategies are found by name with `get`
(as keras-hub's samplers are):

    "greedy"       GreedySearch(): the most probable id of every row;
    "beam"         BeamSearch(beam_size): the `beam_size` most probable sequences;
    "constrained"  ConstrainedSearch(allowed): greedy, allowed only the labels `allowed`
                   gives each row, and emitting every one of them, most probable first,
                   before EOS: how training finds the order in which the model itself
                   ranks a document's gold labels (`--label-order model`).

A new rule subclasses `Search` (its `step`, and `start` for what it keeps from the
first step) and `register("name")` lets `get` find it.

`generate` returns `(ids, probs, log_prob)`:
    ids: int32 `(batch, max_labels + 1)`: label ids in generation order, then EOS, then PAD;
    probs: float32 `(batch, max_labels + 1)`: each emitted id's probability under
        the masked softmax at its step (0 after EOS);
    log_prob: float32 `(batch,)`: the sequence log-probability, EOS included;
for a strategy that keeps several hypotheses, those of the most probable one, or
with `return_beams` every hypothesis, best first (see `generate`).

Written with `keras.ops` so that a caller's `tf.function` compiles the whole loop;
`ops.while_loop` stops as soon as every row has emitted EOS. A step function whose rows are
independent says so (`step_fn.row_wise = True`): then only the rows not yet finished step.
"""

from __future__ import annotations

from keras import ops, tree

from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID

NEG_INF = -1e9

# Strategy classes by name (`register`, `get`).
SEARCHES: dict[str, type[Search]] = {}


def register(name: str):
    """Class decorator: `get(name, **options)` builds the decorated `Search` subclass."""

    def decorator(cls):
        SEARCHES[name] = cls
        cls.name = name
        return cls

    return decorator


def get(identifier, **options) -> Search:
    """The strategy named `identifier` built with `options` (`get("beam", beam_size=5)`),
    or `identifier` itself if it is already a `Search`."""
    if isinstance(identifier, Search):
        if options:
            raise ValueError(f"options {sorted(options)} given with a Search object, which is already built")
        return identifier
    if identifier not in SEARCHES:
        raise ValueError(f"unknown search {identifier!r}; one of {', '.join(sorted(SEARCHES))}")
    return SEARCHES[identifier](**options)


class Search:
    """A search strategy: which ids each step emits, from that step's masked log-probabilities.

    Attributes:
        width: hypotheses kept per document; `generate` runs `batch * width` rows, a
            document's hypotheses in consecutive rows (`b * width + k`), each document's
            state repeated `width` times.
        exhaust: EOS is blocked in a row while any label it may emit (by `start`'s ban) is
            left, unless `max_labels` forces it.
    """

    name = "search"
    width = 1
    exhaust = False

    def start(self, batch, banned):
        """What the search starts from.

        Args:
            batch: documents (a scalar tensor or int).
            banned: float32 `(batch * width, vocab)`, additive: 0 where a row may emit an
                id, `NEG_INF` where not (PAD and BOS).

        Returns:
            `(scores, banned)`: the hypotheses' initial log-probabilities `(batch, width)`
            and the ban the loop starts from, `(batch * width, vocab)`.
        """
        return ops.zeros((batch, self.width), dtype="float32"), banned

    def step(self, log_probs, scores):
        """Chooses the next id of every row.

        Args:
            log_probs: float32 `(batch * width, vocab)`: each row's masked log-softmax
                (`NEG_INF` or less where an id may not be emitted; a finished row has 0
                on PAD only).
            scores: float32 `(batch, width)`: each hypothesis's log-probability so far.

        Returns:
            `(scores, token, token_log_prob, source)`: the new hypotheses'
            log-probabilities `(batch, width)`; their last ids, int32, and those ids'
            log-probabilities, `(batch * width,)`; and `source`, int32 `(batch * width,)`,
            the row each new hypothesis extends, or None when every row extends itself.
        """
        raise NotImplementedError


@register("greedy")
class GreedySearch(Search):
    """The most probable allowed id at every step."""

    def step(self, log_probs, scores):
        token = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        token_log_prob = ops.max(log_probs, axis=-1)
        return scores + token_log_prob[:, None], token, token_log_prob, None


@register("beam")
class BeamSearch(Search):
    """Keeps the `beam_size` most probable sequences of each document.

    Step 0 expands beam 0 only. A finished hypothesis stays in the beam with its score,
    so it is returned unless `beam_size` unfinished ones score higher: with no length
    penalty this finds the most probable sequence the beam can reach.
    """

    def __init__(self, beam_size: int):
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        self.width = beam_size

    def start(self, batch, banned):
        first_beam = ops.concatenate([ops.zeros((1,)), ops.full((self.width - 1,), NEG_INF)])
        return ops.tile(first_beam[None, :], (batch, 1)), banned

    def step(self, log_probs, scores):
        beam = self.width
        batch, vocab_size = ops.shape(scores)[0], ops.shape(log_probs)[-1]
        candidates = ops.reshape(ops.reshape(scores, (-1, 1)) + log_probs, (batch, beam * vocab_size))
        scores, flat = ops.top_k(candidates, k=beam)  # (batch, beam): sorted, best first
        flat = ops.cast(flat, "int32")
        token_log_prob = ops.take_along_axis(ops.reshape(log_probs, (batch, beam * vocab_size)), flat, axis=1)
        flat = ops.reshape(flat, (-1,))
        source = ops.repeat(ops.arange(batch, dtype="int32") * beam, beam) + flat // vocab_size
        return scores, flat % vocab_size, ops.reshape(token_log_prob, (-1,)), source


@register("constrained")
class ConstrainedSearch(GreedySearch):
    """Greedy search allowed only some labels per row, emitting all of them before EOS.

    Args:
        allowed: bool `(batch, vocab_size)`: the label ids each row may emit (special ids
            are ignored); the row emits every one of them (up to `max_labels`), most
            probable first, then EOS.
    """

    exhaust = True

    def __init__(self, allowed):
        self.allowed = allowed

    def start(self, batch, banned):
        scores, banned = super().start(batch, banned)
        is_label = ops.arange(ops.shape(banned)[-1])[None, :] >= NUM_SPECIAL
        return scores, ops.where(ops.logical_and(is_label, ops.logical_not(self.allowed)), NEG_INF, banned)


def generate(step_fn, state, search, *, vocab_size: int, max_labels: int, min_labels: int = 0, return_beams=False):
    """Runs `search` over `step_fn` from `state`. See the module docstring.

    Args:
        step_fn: `(prev_ids, state) -> (logits, state)`.
        state: the initial decoder state, a nest of `(batch, ...)` tensors (repeated
            `search.width` times per document here).
        search: a `Search`, or a name `get` knows that needs no options (`"greedy"`).
        vocab_size: width of the logits.
        max_labels: most labels per row (EOS is forced after them).
        min_labels: fewest labels per row (EOS is blocked before them).
        return_beams: return every hypothesis, best first: ids and probs
            `(batch, width, max_labels + 1)` and log-probabilities `(batch, width)`
            (`NEG_INF` or less for a slot no distinct sequence filled).

    Returns:
        `(ids, probs, log_prob)`: `(batch, max_labels + 1)`, `(batch, max_labels + 1)` and
        `(batch,)` of each document's most probable hypothesis (see `return_beams`).
    """
    search = get(search)
    width = search.width
    batch = ops.shape(tree.flatten(state)[0])[0]
    if width > 1:
        state = tree.map_structure(lambda s: ops.repeat(s, width, axis=0), state)
    loop = _initial(batch * width, vocab_size, max_labels)
    loop["scores"], loop["banned"] = search.start(batch, loop["banned"])

    def cond(t, loop, state):
        return ops.logical_and(ops.less_equal(t, max_labels), ops.logical_not(ops.all(loop["finished"])))

    def body(t, loop, state):
        if getattr(step_fn, "row_wise", False):
            logits, state = _step_live_rows(step_fn, loop, state, vocab_size)
        else:
            logits, state = step_fn(loop["prev"], state)
        log_probs = _masked_log_probs(
            logits, loop["banned"], loop["finished"], t, min_labels, max_labels, exhaust=search.exhaust
        )
        scores, token, token_log_prob, source = search.step(log_probs, loop["scores"])
        if source is not None:  # hypotheses move to the rows they extend
            loop = {key: ops.take(loop[key], source, axis=0) for key in ("banned", "finished", "ids", "probs")}
            state = tree.map_structure(lambda s: ops.take(s, source, axis=0), state)
        loop = _emit(loop, t, token, token_log_prob, vocab_size)
        loop["scores"] = scores
        return t + 1, loop, state

    _, loop, _ = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), loop, state))
    ids, probs, scores = loop["ids"], loop["probs"], loop["scores"]
    if return_beams:  # a search keeps each document's hypotheses sorted, best first
        steps = max_labels + 1
        return ops.reshape(ids, (batch, width, steps)), ops.reshape(probs, (batch, width, steps)), scores
    if width == 1:
        return ids, probs, scores[:, 0]
    best = ops.arange(batch, dtype="int32") * width + ops.cast(ops.argmax(scores, axis=1), "int32")  # (batch,)
    return ops.take(ids, best, axis=0), ops.take(probs, best, axis=0), ops.max(scores, axis=1)


def search(
    step_fn, state, *, beam_size: int = 1, vocab_size: int, max_labels: int, min_labels: int = 0, return_beams=False
):
    """`generate` with the strategy a beam size names: greedy search for `beam_size == 1`,
    beam search above (and for every hypothesis, `return_beams`, at any size)."""
    strategy = get("greedy") if beam_size == 1 and not return_beams else get("beam", beam_size=beam_size)
    return generate(
        step_fn,
        state,
        strategy,
        vocab_size=vocab_size,
        max_labels=max_labels,
        min_labels=min_labels,
        return_beams=return_beams,
    )


def _step_live_rows(step_fn, loop, state, vocab_size):
    """`step_fn` over the rows not yet finished, the others' logits 0 and states as they were (a
    finished row only emits PAD): most rows of a short-label search finish within a few steps.
    For a `step_fn` whose rows are independent (`row_wise`)."""
    live = ops.cast(ops.reshape(ops.where(ops.logical_not(loop["finished"]))[0], (-1,)), "int32")  # (live,)
    live_logits, live_state = step_fn(
        ops.take(loop["prev"], live, axis=0), tree.map_structure(lambda s: ops.take(s, live, axis=0), state)
    )
    rows = ops.shape(loop["prev"])[0]
    logits = ops.scatter(live[:, None], live_logits, (rows, vocab_size))
    state = tree.map_structure(lambda s, new: ops.scatter_update(s, live[:, None], new), state, live_state)
    return logits, state


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
    """The loop's buffers for `rows` rows: previous ids (BOS), ban (PAD, BOS), finished, ids, probs."""
    columns = ops.arange(vocab_size)
    banned = ops.where(ops.logical_or(ops.equal(columns, PAD_ID), ops.equal(columns, BOS_ID)), NEG_INF, 0.0)
    return dict(
        prev=ops.full((rows,), BOS_ID, dtype="int32"),
        banned=ops.tile(banned[None, :], (rows, 1)),
        finished=ops.zeros((rows,), dtype="bool"),
        ids=ops.zeros((rows, max_labels + 1), dtype="int32"),
        probs=ops.zeros((rows, max_labels + 1), dtype="float32"),
    )


def _emit(loop, t, token, token_log_prob, vocab_size):
    """Records the chosen ids (PAD in rows already finished); bans them from later steps;
    marks EOS rows finished."""
    was_finished = loop["finished"]
    token = ops.where(was_finished, PAD_ID, token)
    prob = ops.where(was_finished, 0.0, ops.exp(token_log_prob))
    return dict(
        prev=token,
        banned=ops.minimum(loop["banned"], NEG_INF * ops.one_hot(token, vocab_size)),
        finished=ops.logical_or(was_finished, ops.equal(token, EOS_ID)),
        ids=_write(loop["ids"], t, token),
        probs=_write(loop["probs"], t, prob),
    )
