"""The label-sequence model at inference: the step function a search runs, the search over
token ids, and attention explanations.

`step_function` is the decoder's logits plus what decoding adds to them (the EOS bias, the
label head's weighted log-sigmoid and a per-document prior); `generate` runs a
`mlgen.nn.decoding` search over it, which only ever sees the step function. The compiled
prediction function that calls `generate` is `mlgen.nn.prediction`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from keras import ops

from mlgen.data.predictions import Explanation
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, LabelVocabulary
from mlgen.nn import decoding


def step_function(model, token_ids, beam_size: int = 1, prior=None):
    """`(step_fn, initial_states)` for `mlgen.nn.decoding` over token ids `(batch, length)`.

    `step_fn(prev_ids (rows,), states, docs=None) -> (logits (rows, num_label_ids), states)`,
    rows = batch * beam_size: the model's next-label logits (`LabelSequenceModel.decoding_start`)
    plus, at every step, the model's EOS bias on the EOS logit, its label head's
    log-sigmoid times `label_prior_weight` (models with a head), and `prior`, float
    `(batch, num_labels)` or None, on each document's label logits (the linear-br
    ensemble's weighted margins). What is added is held per document and taken by `docs`,
    int `(rows,)`, each row's document (None: row i is document i).

    The initial states are per document (the search repeats them for its hypotheses).
    Without attention every row's state is its own, so `step_fn.row_wise` is True: the
    search may step only the rows still searching (`mlgen.nn.decoding.generate`). With
    attention a document's hypotheses attend to its memory together, so every row steps.
    """
    next_logits, states, features = model.decoding_start(token_ids, beam_size)
    batch = ops.shape(features)[0]
    added = ops.one_hot(ops.full((batch,), EOS_ID, dtype="int32"), model.num_label_ids) * model.eos_bias
    if model.label_head is not None:
        head = ops.log_sigmoid(model.label_head(features)) * model.label_prior_weight  # (batch, labels)
        added = added + ops.pad(head, [[0, 0], [NUM_SPECIAL, 0]])
    if prior is not None:
        added = added + ops.pad(ops.cast(prior, added.dtype), [[0, 0], [NUM_SPECIAL, 0]])

    def step_fn(prev_ids, states, docs=None):
        logits, states = next_logits(prev_ids, states)
        return logits + (added if docs is None else ops.take(added, docs, axis=0)), states

    step_fn.row_wise = model.attention is None
    return step_fn, states


def label_limit(model, max_labels: int | None = None) -> int:
    """The most labels a search runs for: `max_labels` (default: the model's), never more than
    the labels there are (no label is emitted twice, so more steps find nothing)."""
    return min(model.max_labels if max_labels is None else max_labels, len(model.labels))


def generate(model, token_ids, prior, beam_size: int = 1, max_labels: int | None = None, return_beams: bool = False):
    """The search over token ids `(batch, sequence_length)`, feeding back the model's own predictions:
    greedy for `beam_size` 1 (unless `return_beams`), else beam search.

    `prior`: float32 `(batch, num_labels)` added to every step's label logits (zeros for none).

    Returns:
        `(ids, probs, log_prob)`: ids/probs `(batch, steps)` (labels in generation order, then
        EOS, then PAD; steps = `label_limit(max_labels) + 1`) and the sequence log-probability
        `(batch,)`; with `return_beams`, every beam hypothesis, best first: `(batch,
        beam_size, steps)` and `(batch, beam_size)`. See `mlgen.nn.decoding`.
    """
    step_fn, states = step_function(model, token_ids, beam_size, prior)
    return decoding.search(
        step_fn,
        states,
        beam_size=beam_size,
        vocab_size=model.num_label_ids,
        max_labels=label_limit(model, max_labels),
        min_labels=model.min_labels,
        return_beams=return_beams,
    )


def explain(model, vocab: LabelVocabulary, text: str, labels: Sequence[str]) -> Explanation:
    """The attention weights behind each of `labels` (generated in that order) for `text`."""
    token_ids = np.asarray(model.text_vectorizer(np.array([text])))  # (1, sequence_length)
    length = int(np.count_nonzero(token_ids[0]))
    vocabulary = model.text_vectorizer.get_vocabulary()
    decoder_input = np.array([[BOS_ID, *(vocab.id(label) for label in labels[:-1])]], dtype="int32")
    weights = np.asarray(model.attention_weights(token_ids, decoder_input))  # (1, steps, sequence_length)
    return Explanation(
        tokens=[vocabulary[i] for i in token_ids[0, :length]],
        labels=list(labels),
        weights=weights[0, : len(labels), :length],
    )
