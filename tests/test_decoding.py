"""The search strategies and their loop on rigged step functions (a Markov chain over label ids)."""

import numpy as np
import pytest

from mlgen.data.vocab import BOS_ID, EOS_ID, PAD_ID
from mlgen.nn import decoding
from mlgen.nn.decoding import BeamSearch, ConstrainedSearch, GreedySearch, Search, generate, search

A, B, C = 3, 4, 5
V = 6
EPS = 1e-6


def chain(transitions):
    """A step function whose next-id probabilities depend only on the previous id.

    `transitions[prev] = {next_id: prob}`; unlisted ids get probability ~0. The state
    is a per-row bias added to the logits, `(batch, V)`.
    """
    table = np.full((V, V), np.log(EPS), dtype="float32")
    for prev, row in transitions.items():
        for nxt, p in row.items():
            table[prev, nxt] = np.log(p)

    def step(prev_ids, state, docs=None):
        from keras import ops

        (bias,) = state
        return ops.take(ops.convert_to_tensor(table), prev_ids, axis=0) + bias, [bias]

    return step


def run(step, batch=1, bias=None, **kwargs):
    bias = np.zeros((batch, V), "float32") if bias is None else bias
    kwargs = {"vocab_size": V, "max_labels": 4, **kwargs}
    ids, probs, log_prob = search(step, [bias], **kwargs)
    return np.asarray(ids), np.asarray(probs), np.asarray(log_prob)


# Greedy takes A (0.55) then must stop (EOS 0.4): p = 0.22. B then EOS has p = 0.405.
TRAP = {BOS_ID: {A: 0.55, B: 0.45}, A: {EOS_ID: 0.4, B: 0.3, C: 0.3}, B: {EOS_ID: 0.9, C: 0.1}, C: {EOS_ID: 1.0}}


def test_greedy_follows_the_most_probable_step():
    ids, probs, log_prob = run(chain(TRAP), min_labels=0)
    assert ids[0].tolist() == [A, EOS_ID, PAD_ID, PAD_ID, PAD_ID]
    np.testing.assert_allclose(probs[0, :2], [0.55, 0.4], atol=1e-4)
    np.testing.assert_allclose(log_prob[0], np.log(0.55 * 0.4), atol=1e-4)


def test_beam_finds_the_more_probable_sequence_greedy_misses():
    ids, probs, log_prob = run(chain(TRAP), beam_size=2, min_labels=0)
    assert ids[0].tolist()[:2] == [B, EOS_ID]
    np.testing.assert_allclose(log_prob[0], np.log(0.45 * 0.9), atol=1e-4)
    greedy_log_prob = run(chain(TRAP), min_labels=0)[2]
    assert log_prob[0] > greedy_log_prob[0]


def test_beam_size_one_is_greedy():
    for a, b in zip(run(chain(TRAP), beam_size=1), run(chain(TRAP))):
        np.testing.assert_array_equal(a, b)


def test_a_label_is_never_emitted_twice():
    # A prefers A again; it must move on to the next best instead.
    step = chain({BOS_ID: {A: 0.9, EOS_ID: 0.1}, A: {A: 0.8, B: 0.15, EOS_ID: 0.05}, B: {A: 0.9, EOS_ID: 0.1}})
    for beam_size in (1, 3):
        ids = run(step, beam_size=beam_size)[0][0].tolist()
        labels = ids[: ids.index(EOS_ID)]
        assert len(labels) == len(set(labels))
    assert run(step)[0][0].tolist()[:3] == [A, B, EOS_ID]


def test_pad_and_bos_are_never_emitted():
    step = chain({BOS_ID: {PAD_ID: 0.5, BOS_ID: 0.4, A: 0.1}, A: {PAD_ID: 0.7, BOS_ID: 0.2, EOS_ID: 0.1}})
    for beam_size in (1, 2):
        ids = run(step, beam_size=beam_size)[0][0].tolist()
        assert ids[:2] == [A, EOS_ID]


def test_max_labels_forces_eos():
    never_stop = chain({BOS_ID: {A: 0.5, B: 0.5}, A: {B: 0.5, C: 0.5}, B: {A: 0.5, C: 0.5}, C: {A: 0.5, B: 0.5}})
    for beam_size in (1, 2):
        ids, probs, _ = run(never_stop, beam_size=beam_size, max_labels=2)
        assert ids.shape == (1, 3)
        assert ids[0, 2] == EOS_ID and len(set(ids[0, :2])) == 2
        assert probs[0, 2] == pytest.approx(1.0)  # EOS is the only choice left


def test_min_labels_blocks_an_early_eos():
    quiet = chain({BOS_ID: {EOS_ID: 0.9, A: 0.1}, A: {EOS_ID: 1.0}})
    assert run(quiet, min_labels=0)[0][0, 0] == EOS_ID
    assert run(quiet, min_labels=1)[0][0].tolist()[:2] == [A, EOS_ID]
    assert run(quiet, beam_size=2, min_labels=1)[0][0].tolist()[:2] == [A, EOS_ID]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_rows_decode_independently_and_pad_after_eos(beam_size):
    bias = np.zeros((3, V), "float32")
    bias[1, C] = 20.0  # row 1 strongly prefers C first
    bias[2, EOS_ID] = 20.0  # row 2 stops as early as it may
    ids = run(chain(TRAP), batch=3, bias=bias, beam_size=beam_size, min_labels=1)[0]
    assert ids[0].tolist()[:2] in ([A, EOS_ID], [B, EOS_ID])
    assert ids[1, 0] == C
    assert ids[2, 1] == EOS_ID
    for row in ids.tolist():
        end = row.index(EOS_ID)
        assert all(i == PAD_ID for i in row[end + 1 :])


def test_strategies_are_found_by_name_and_run_by_generate():
    step, state = chain(TRAP), [np.zeros((1, V), "float32")]
    greedy = generate(step, state, decoding.get("greedy"), vocab_size=V, max_labels=4)[0]
    beam = generate(step, state, decoding.get("beam", beam_size=2), vocab_size=V, max_labels=4)[0]
    assert np.asarray(greedy)[0, 0] == A and np.asarray(beam)[0, 0] == B
    by_name = generate(step, state, "greedy", vocab_size=V, max_labels=4)[0]  # a name needing no options is enough
    np.testing.assert_array_equal(np.asarray(by_name), np.asarray(greedy))
    assert type(decoding.get("greedy")) is GreedySearch
    assert isinstance(decoding.get("beam", beam_size=3), BeamSearch) and decoding.get("beam", beam_size=3).width == 3
    constrained = decoding.get("constrained", allowed=np.ones((1, V), bool))
    assert isinstance(constrained, ConstrainedSearch)
    strategy = BeamSearch(4)
    assert decoding.get(strategy) is strategy


def test_get_refuses_an_unknown_name_and_options_for_a_built_search():
    with pytest.raises(ValueError, match="unknown search 'sample'; one of beam, constrained, greedy"):
        decoding.get("sample")
    with pytest.raises(ValueError, match="beam_size"):
        decoding.get(BeamSearch(2), beam_size=3)


def test_a_beam_of_one_chooses_as_greedy_does():
    step, state = chain(TRAP), [np.zeros((2, V), "float32")]
    for a, b in zip(
        generate(step, state, BeamSearch(1), vocab_size=V, max_labels=4),
        generate(step, state, GreedySearch(), vocab_size=V, max_labels=4),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class Longest(GreedySearch):
    """A rule to try: never stop before `max_labels` while a label is left (greedy otherwise):
    EOS only when it is the one id a row may emit, so the rule needs each row's best two."""

    candidates = 2

    def step(self, log_probs, ids, scores):
        from keras import ops

        other_allowed = log_probs[:, 1] > decoding.NEG_INF / 2
        pick = ops.cast(ops.logical_and(ops.equal(ids[:, 0], EOS_ID), other_allowed), "int32")  # (rows,)
        token = ops.take_along_axis(ids, pick[:, None], axis=1)[:, 0]
        token_log_prob = ops.take_along_axis(log_probs, pick[:, None], axis=1)[:, 0]
        return scores + token_log_prob[:, None], token, token_log_prob, None


def test_a_new_strategy_registered_by_name_runs_in_the_loop():
    decoding.register("longest")(Longest)
    try:
        strategy = decoding.get("longest")
        assert isinstance(strategy, Search) and strategy.name == "longest"
        # Greedy stops after A (EOS 0.6); the rule goes on to B (0.3), C (0.1), then EOS is forced.
        step = chain({BOS_ID: {A: 0.55, B: 0.45}, A: {EOS_ID: 0.6, B: 0.3, C: 0.1}, B: {EOS_ID: 0.9, C: 0.1}})
        ids, probs, log_prob = (
            np.asarray(x) for x in generate(step, [np.zeros((1, V), "float32")], strategy, vocab_size=V, max_labels=3)
        )
    finally:
        del decoding.SEARCHES["longest"]
    assert ids[0].tolist() == [A, B, C, EOS_ID]
    np.testing.assert_allclose(probs[0], [0.55, 0.3, 0.1, 1.0], atol=1e-4)
    np.testing.assert_allclose(log_prob[0], np.log(0.55 * 0.3 * 0.1), atol=1e-4)
    assert run(step, max_labels=3)[0][0].tolist()[:2] == [A, EOS_ID]


@pytest.mark.parametrize("name,options", [("greedy", {}), ("beam", {"beam_size": 3}), ("constrained", {})])
def test_every_strategy_compiles_to_the_eager_result(name, options):
    import tensorflow as tf

    bias = np.zeros((3, V), "float32")
    bias[1, C] = 20.0
    allowed = np.zeros((3, V), bool)
    allowed[:, [A, C]] = True

    def decode(bias, allowed):
        strategy = decoding.get(name, **({"allowed": allowed} if name == "constrained" else options))
        return generate(chain(TRAP), [bias], strategy, vocab_size=V, max_labels=4, min_labels=1)

    compiled = tf.function(decode, autograph=False)  # as inference compiles it: one graph, the loop inside
    for a, b in zip(compiled(tf.constant(bias), tf.constant(allowed)), decode(bias, allowed)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert compiled.experimental_get_tracing_count() == 1


def test_beam_size_must_be_positive():
    with pytest.raises(ValueError, match="beam_size"):
        run(chain(TRAP), beam_size=0)


def test_allowed_labels_are_all_emitted_most_probable_first_then_eos():
    # The chain prefers A, then EOS; row 0 may only emit B and C, row 1 only A, row 2 nothing.
    step = chain({BOS_ID: {A: 0.6, C: 0.3, B: 0.1}, A: {EOS_ID: 0.9, B: 0.1}, C: {EOS_ID: 0.8, B: 0.2},
                  B: {EOS_ID: 0.9, C: 0.1}})  # fmt: skip
    allowed = np.zeros((3, V), bool)
    allowed[0, [B, C]] = True
    allowed[1, A] = True
    bias = np.zeros((3, V), "float32")
    strategy = decoding.get("constrained", allowed=allowed)
    ids, _, _ = (np.asarray(x) for x in generate(step, [bias], strategy, vocab_size=V, max_labels=3))
    assert ids[0].tolist() == [C, B, EOS_ID, PAD_ID]  # C ranks above B at step 0; EOS waits for B
    assert ids[1].tolist() == [A, EOS_ID, PAD_ID, PAD_ID]
    assert ids[2].tolist() == [EOS_ID, PAD_ID, PAD_ID, PAD_ID]


def test_return_beams_gives_every_hypothesis_best_first():
    ids, probs, scores = (np.asarray(x) for x in search(chain(TRAP), [np.zeros((2, V), "float32")], beam_size=3,
                                                        vocab_size=V, max_labels=4, return_beams=True))  # fmt: skip
    assert ids.shape == (2, 3, 5) and probs.shape == (2, 3, 5) and scores.shape == (2, 3)
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    best_ids, _, best_score = run(chain(TRAP), batch=2, beam_size=3)
    np.testing.assert_array_equal(ids[:, 0], best_ids)
    np.testing.assert_allclose(scores[:, 0], best_score, rtol=1e-6)
    np.testing.assert_allclose(np.log(np.where(probs > 0, probs, 1)).sum(axis=-1), scores, rtol=1e-5)
    assert len({tuple(row) for row in ids[0]}) == 3  # three distinct sequences


def test_only_rows_still_searching_step():
    # Beam search starts from one hypothesis per document, and finished hypotheses keep their
    # state: a row-wise step function is called on the others only, with the same results.
    stepped = []
    every_row = chain(TRAP)

    def row_wise(prev_ids, state, docs=None):
        stepped.append((len(prev_ids), np.asarray(docs).tolist()))
        return every_row(prev_ids, state, docs)

    row_wise.row_wise = True
    bias = np.zeros((2, V), "float32")
    bias[1, B] = 20.0  # document 1 takes B (then EOS at 0.9); document 0 follows the chain
    kwargs = dict(beam_size=3, vocab_size=V, max_labels=4, min_labels=0, return_beams=True)
    fast = search(row_wise, [bias], **kwargs)
    for a, b in zip(fast, search(every_row, [bias], **kwargs)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert stepped[0] == (2, [0, 1])  # step 0: one row per document, each knowing its document
    assert all(rows < 6 for rows, _ in stepped[1:])  # a finished hypothesis is not stepped again
    assert all(docs == sorted(docs) for _, docs in stepped)
