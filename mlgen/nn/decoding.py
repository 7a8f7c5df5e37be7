"""Search strategies over a step function, and the one loop that runs them. Never imports the model.

A step function maps the previous label ids and the decoder state to the next
logits and state:

    step_fn(prev_ids: (rows,) int32, state: nest of (rows, ...) tensors, docs: (rows,) int32)
        -> (logits: (rows, vocab_size), new_state: same nest)

`docs` is the document each row belongs to (what a step function holds per document, it
takes by it; `None` when row i is document i).

`generate(step_fn, state, search, ...)` is the loop. It feeds each step its own
previous prediction and, before every choice, masks the logits into log-probabilities
by rules every strategy shares: PAD and BOS never; a label never twice; EOS blocked
before `min_labels` labels and forced after `max_labels`; a finished row emits PAD, at
no cost. Then it hands the strategy, a `Search`, each row's `candidates` most probable
ids and asks which to emit (`Search.step`, as fairseq's `search.py` does), and records
them. Strategies are found by name with `get` (as keras-hub's samplers are):

    "greedy"       GreedySearch(): the most probable id of every row;
    "beam"         BeamSearch(beam_size): the `beam_size` most probable sequences;
    "constrained"  ConstrainedSearch(allowed): greedy, allowed only the labels `allowed`
                   gives each row, and emitting every one of them, most probable first,
                   before EOS: how training finds the order in which the model itself
                   ranks a document's gold labels (`--label-order model`).

A new rule subclasses `Search` (its `step`; `start` for the scores it starts from; `bias`
for ids it bans or favours) and `register("name")` lets `get` find it.

`generate` returns `(ids, probs, log_prob)`:
    ids: int32 `(batch, max_labels + 1)`: label ids in generation order, then EOS, then PAD;
    probs: float32 `(batch, max_labels + 1)`: each emitted id's probability under
        the masked softmax at its step (0 after EOS);
    log_prob: float32 `(batch,)`: the sequence log-probability, EOS included;
for a strategy that keeps several hypotheses, those of the most probable one, or
with `return_beams` every hypothesis, best first (see `generate`).

Written with `keras.ops` so that a caller's `tf.function` compiles the whole loop;
`ops.while_loop` stops as soon as every row has emitted EOS. Each step works on the rows
still searching only (neither finished nor an empty slot of the beam): their masking,
log-softmax and top candidates always, and the step function itself when its rows are
independent (`step_fn.row_wise = True`); the others keep their state and emit PAD.
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
    """A search strategy: which ids each step emits, from each row's most probable ids.

    Attributes:
        width: hypotheses kept per document; `generate` runs `batch * width` rows, a
            document's hypotheses in consecutive rows (`b * width + k`), each document's
            state repeated `width` times.
        candidates: how many of each row's most probable ids `step` is given (default:
            `width`, all a search that keeps the `width` best extensions can choose from).
    """

    name = "search"
    width = 1

    @property
    def candidates(self) -> int:
        return self.width

    def start(self, batch):
        """The hypotheses' initial log-probabilities, float32 `(batch, width)`. A slot at
        `NEG_INF` is empty: it is not stepped and never beats a real hypothesis."""
        return ops.zeros((batch, self.width), dtype="float32")

    def bias(self, docs, t, max_labels):
        """What the strategy adds to the masked logits of the rows still searching, float32
        `(rows, vocab)` (`NEG_INF` bans an id), or None. `docs` `(rows,)`: each row's document;
        `t`: the step, the labels each of those rows has emitted so far."""
        return None

    def step(self, log_probs, ids, scores):
        """Chooses the next id of every row.

        Args:
            log_probs: float32 `(batch * width, candidates)`: each row's most probable
                masked log-probabilities, highest first (`NEG_INF` or less for an id it may
                not emit; a finished row or empty slot offers PAD at 0, then `NEG_INF`).
            ids: int32 `(batch * width, candidates)`: the ids they belong to.
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

    def step(self, log_probs, ids, scores):
        return scores + log_probs[:, :1], ids[:, 0], log_probs[:, 0], None


@register("beam")
class BeamSearch(Search):
    """Keeps the `beam_size` most probable sequences of each document.

    Step 0 expands beam 0 only (the others start empty). A finished hypothesis stays in
    the beam with its score, so it is returned unless `beam_size` unfinished ones score
    higher: with no length penalty this finds the most probable sequence the beam can reach.
    """

    def __init__(self, beam_size: int):
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        self.width = beam_size

    def start(self, batch):
        first_beam = ops.concatenate([ops.zeros((1,)), ops.full((self.width - 1,), NEG_INF)])
        return ops.tile(first_beam[None, :], (batch, 1))

    def step(self, log_probs, ids, scores):
        beam, k = self.width, ops.shape(log_probs)[-1]
        batch = ops.shape(scores)[0]
        extended = ops.reshape(ops.reshape(scores, (-1, 1)) + log_probs, (batch, beam * k))
        scores, position = ops.top_k(extended, k=beam)  # (batch, beam): sorted, best first
        position = ops.cast(position, "int32")
        token = ops.take_along_axis(ops.reshape(ids, (batch, beam * k)), position, axis=1)
        token_log_prob = ops.take_along_axis(ops.reshape(log_probs, (batch, beam * k)), position, axis=1)
        source = ops.arange(batch, dtype="int32")[:, None] * beam + position // k
        return scores, ops.reshape(token, (-1,)), ops.reshape(token_log_prob, (-1,)), ops.reshape(source, (-1,))


@register("constrained")
class ConstrainedSearch(GreedySearch):
    """Greedy search allowed only some labels per row, emitting all of them before EOS.

    Args:
        allowed: bool `(batch, vocab_size)`: the label ids each row may emit (special ids
            are ignored); the row emits every one of them (up to `max_labels`), most
            probable first, then EOS.
    """

    def __init__(self, allowed):
        self.allowed = allowed

    def bias(self, docs, t, max_labels):
        allowed = ops.take(ops.convert_to_tensor(self.allowed), docs, axis=0)  # (rows, vocab)
        columns = ops.arange(ops.shape(allowed)[-1])[None, :]
        allowed = ops.logical_and(allowed, columns >= NUM_SPECIAL)
        # Every label a row emitted was allowed, so a row at step t has a label left if it allows more than t.
        left = ops.logical_and(ops.sum(ops.cast(allowed, "int32"), axis=1) > t, ops.less(t, max_labels))
        banned = ops.logical_and(columns >= NUM_SPECIAL, ops.logical_not(allowed))
        eos_blocked = ops.logical_and(left[:, None], ops.equal(columns, EOS_ID))
        return ops.where(ops.logical_or(banned, eos_blocked), NEG_INF, 0.0)


def generate(step_fn, state, search, *, vocab_size: int, max_labels: int, min_labels: int = 0, return_beams=False):
    """Runs `search` over `step_fn` from `state`. See the module docstring.

    Args:
        step_fn: `(prev_ids, state, docs) -> (logits, state)`.
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
    width, k = search.width, min(search.candidates, vocab_size)
    batch = ops.shape(tree.flatten(state)[0])[0]
    rows = batch * width
    docs = ops.repeat(ops.arange(batch, dtype="int32"), width)  # (rows,)
    if width > 1:
        state = tree.map_structure(lambda s: ops.repeat(s, width, axis=0), state)
    # What a finished row or an empty slot offers: PAD at no cost, then ids it may never emit.
    idle_log_probs, idle_ids = ops.top_k(ops.where(ops.arange(vocab_size) == PAD_ID, 0.0, NEG_INF), k=k)
    idle_log_probs = ops.tile(idle_log_probs[None, :], (rows, 1))
    idle_ids = ops.tile(ops.cast(idle_ids, "int32")[None, :], (rows, 1))
    loop = dict(
        prev=ops.full((rows,), BOS_ID, dtype="int32"),
        finished=ops.zeros((rows,), dtype="bool"),
        ids=ops.zeros((rows, max_labels + 1), dtype="int32"),
        probs=ops.zeros((rows, max_labels + 1), dtype="float32"),
        scores=search.start(batch),
    )

    def searching(loop):
        return ops.logical_and(ops.logical_not(loop["finished"]), ops.reshape(loop["scores"], (-1,)) > NEG_INF / 2)

    def cond(t, loop, state):
        return ops.logical_and(ops.less_equal(t, max_labels), ops.any(searching(loop)))

    def body(t, loop, state):
        live = ops.cast(ops.reshape(ops.where(searching(loop))[0], (-1,)), "int32")  # (live,)
        live_docs = ops.take(docs, live, axis=0)
        if getattr(step_fn, "row_wise", False):
            live_state = tree.map_structure(lambda s: ops.take(s, live, axis=0), state)
            logits, live_state = step_fn(ops.take(loop["prev"], live, axis=0), live_state, live_docs)
            state = tree.map_structure(lambda s, new: ops.scatter_update(s, live[:, None], new), state, live_state)
        else:
            logits, state = step_fn(loop["prev"], state, docs)
            logits = ops.take(logits, live, axis=0)
        emitted = ops.take(loop["ids"], live, axis=0)
        log_probs = _masked_log_probs(logits, emitted, t, min_labels, max_labels, search.bias(live_docs, t, max_labels))
        top, top_ids = ops.top_k(log_probs, k=k)  # (live, k)
        top = ops.scatter_update(idle_log_probs, live[:, None], top)
        top_ids = ops.scatter_update(idle_ids, live[:, None], ops.cast(top_ids, "int32"))
        scores, token, token_log_prob, source = search.step(top, top_ids, loop["scores"])
        if source is not None:  # hypotheses move to the rows they extend
            loop = {key: ops.take(loop[key], source, axis=0) for key in ("finished", "ids", "probs")}
            state = tree.map_structure(lambda s: ops.take(s, source, axis=0), state)
        loop = _emit(loop, t, token, token_log_prob)
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


def _masked_log_probs(logits, emitted, t, min_labels, max_labels, bias=None):
    """log-softmax over the ids a row may emit, `(rows, vocab)`.

    Args:
        logits: `(rows, vocab)` of rows still searching.
        emitted: int `(rows, steps)`: the ids each row emitted so far (PAD after them,
            which is banned anyway).
        bias: the strategy's `(rows, vocab)`, or None.
    """
    vocab_size = ops.shape(logits)[-1]
    columns = ops.arange(vocab_size)
    is_eos = ops.cast(ops.equal(columns, EOS_ID), "float32")  # (vocab,)
    never = ops.where(ops.logical_or(ops.equal(columns, PAD_ID), ops.equal(columns, BOS_ID)), NEG_INF, 0.0)
    # EOS is blocked before `min_labels`; every other id from `max_labels` on.
    step_bias = (
        never
        + ops.where(ops.less(t, min_labels), NEG_INF * is_eos, 0.0)
        + ops.where(ops.greater_equal(t, max_labels), NEG_INF * (1.0 - is_eos), 0.0)
    )
    logits = ops.cast(logits, "float32") + step_bias[None, :]
    if bias is not None:
        logits = logits + bias
    rows, steps = ops.shape(emitted)[0], ops.shape(emitted)[1]
    emitted_at = ops.stack([ops.repeat(ops.arange(rows, dtype="int32"), steps), ops.reshape(emitted, (-1,))], axis=1)
    logits = ops.scatter_update(logits, emitted_at, ops.full((rows * steps,), NEG_INF))  # no label twice
    return ops.log_softmax(logits, axis=-1)


def _write(buffer, t, values):
    """`buffer[:, t] = values` for a `(rows, steps)` buffer and a scalar tensor `t`."""
    column = ops.cast(ops.one_hot(t, ops.shape(buffer)[1]), buffer.dtype)[None, :]
    return buffer * (1 - column) + ops.cast(values, buffer.dtype)[:, None] * column


def _emit(loop, t, token, token_log_prob):
    """Records the chosen ids (PAD in rows already finished); marks EOS rows finished."""
    was_finished = loop["finished"]
    token = ops.where(was_finished, PAD_ID, token)
    prob = ops.where(was_finished, 0.0, ops.exp(token_log_prob))
    return dict(
        prev=token,
        finished=ops.logical_or(was_finished, ops.equal(token, EOS_ID)),
        ids=_write(loop["ids"], t, token),
        probs=_write(loop["probs"], t, prob),
    )
