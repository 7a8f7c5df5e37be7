"""Texts in, predictions out: the one place the trained networks run at inference.

For the label-sequence model, `SequenceInference` owns every step from raw strings to
`Prediction`s: the step function the search runs (`step_function`: the decoder's logits
plus what decoding adds to them, the EOS bias, the label head's weighted log-sigmoid
and a per-document prior), the compiled search (one `tf.function` per setting),
batching, greedy search's two passes, beam marginals, and ids -> label names
(`LabelVocabulary.to_labels`). `mlgen.nn.decoding` only ever sees the step function.
For binary relevance, `BinaryRelevanceInference` computes the batched sigmoid scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from keras import ops

from mlgen.data.predictions import Explanation, Prediction
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, LabelVocabulary
from mlgen.nn import decoding

# Tokens per compiled predict call. Short texts get large batches (they spread the decoding
# loop's per-step cost over more documents), long ones smaller (the CNN's feature maps stay
# in cache): 256 documents of 200 tokens were faster than 512 or 1,024 on Reuters, 2,048
# titles of 20 tokens faster than 256 on cooking_se.
PREDICT_TOKENS = 256 * 200
# Labels the first greedy pass allows (see `SequenceInference.decode`).
FIRST_PASS_LABELS = 3
# Most search rows (documents times beam) per compiled call: a wide beam gets fewer documents
# per batch, so that memory stays bounded whatever the beam (beams up to 8 keep the batch size).
MAX_SEARCH_ROWS = 16384


def predict_batch_size(sequence_length: int) -> int:
    """Documents per predict call for texts of `sequence_length` tokens (64 to 2,048)."""
    return max(64, min(2048, PREDICT_TOKENS // max(sequence_length, 1)))


def search_batch_size(batch_size: int, beam_size: int) -> int:
    """Documents per search call: `batch_size`, fewer when `beam_size` would make more than
    `MAX_SEARCH_ROWS` rows."""
    return max(1, min(batch_size, MAX_SEARCH_ROWS // beam_size))


def step_function(model, token_ids, beam_size: int = 1, prior=None):
    """`(step_fn, initial_states)` for `mlgen.nn.decoding` over token ids `(batch, length)`.

    `step_fn(prev_ids (rows,), states) -> (logits (rows, num_label_ids), states)`, rows =
    batch * beam_size: the model's next-label logits (`LabelSequenceModel.decoding_start`)
    plus, at every step, the model's EOS bias on the EOS logit, its label head's
    log-sigmoid times `label_prior_weight` (models with a head), and `prior`, float
    `(batch, num_labels)` or None, on each document's label logits (the linear-br
    ensemble's weighted margins).
    """
    next_logits, states, features = model.decoding_start(token_ids, beam_size)
    added = ops.one_hot(EOS_ID, model.num_label_ids) * model.eos_bias  # (num_label_ids,)
    if model.label_head is not None:
        head = ops.log_sigmoid(model.label_head(features)) * model.label_prior_weight  # (batch, labels)
        added = added + ops.repeat(ops.pad(head, [[0, 0], [NUM_SPECIAL, 0]]), beam_size, axis=0)
    if prior is not None:
        added = added + ops.repeat(ops.pad(prior, [[0, 0], [NUM_SPECIAL, 0]]), beam_size, axis=0)

    def step_fn(prev_ids, states):
        logits, states = next_logits(prev_ids, states)
        return logits + added, states

    return step_fn, states


class SequenceInference:
    """A `LabelSequenceModel` run over raw texts, in compiled batches.

    Args:
        model: the trained `LabelSequenceModel`.
        vocab: its label vocabulary (ids -> names).
    """

    def __init__(self, model, vocab: LabelVocabulary):
        self.model = model
        self.vocab = vocab
        self._functions = {}  # compiled tf.functions, by setting

    def generate(self, texts, prior, beam_size: int = 1, max_labels: int | None = None, return_beams: bool = False):
        """The search over a batch of raw strings `(batch,)`, feeding back the model's own predictions.

        `prior`: float `(batch, num_labels)` added to every step's label logits (zeros for none).

        Returns:
            `(ids, probs, log_prob)`: ids/probs `(batch, max_labels + 1)` (labels in
            generation order, then EOS, then PAD) and the sequence log-probability
            `(batch,)`; with `return_beams`, every beam hypothesis, best first:
            `(batch, beam_size, max_labels + 1)` and `(batch, beam_size)`. See
            `mlgen.nn.decoding`.
        """
        model = self.model
        step_fn, states = step_function(model, model.text_vectorizer(texts), beam_size, prior)
        return decoding.search(
            step_fn,
            states,
            beam_size=beam_size,
            vocab_size=model.num_label_ids,
            max_labels=self.label_limit(max_labels),
            min_labels=model.min_labels,
            return_beams=return_beams,
        )

    def label_limit(self, max_labels: int | None = None) -> int:
        """The most labels a search runs for: `max_labels` (default: the model's), never more than
        the labels there are (no label is emitted twice, so more steps find nothing)."""
        return min(self.model.max_labels if max_labels is None else max_labels, self.vocab.num_labels)

    def generate_function(self, beam_size: int = 1, max_labels: int | None = None, return_beams: bool = False):
        """`generate` compiled with `tf.function` for any batch size, cached per setting.

        It takes the texts `(batch,)` and a prior `(batch, num_labels)` (zeros for none):
        one compiled function per setting, so that decoding with and without the
        linear-br ensemble does not trace twice.
        """
        key = (beam_size, max_labels, return_beams)
        if key not in self._functions:

            def generate(texts, prior):
                return self.generate(texts, prior, beam_size, max_labels, return_beams)

            signature = [tf.TensorSpec([None], tf.string), tf.TensorSpec([None, self.vocab.num_labels], tf.float32)]
            # No autograph: the search loop is an explicit `ops.while_loop`.
            self._functions[key] = tf.function(generate, input_signature=signature, autograph=False)
        return self._functions[key]

    def decode(
        self,
        texts: Sequence[str],
        beam_size: int = 1,
        max_labels: int | None = None,
        batch_size: int | None = None,
        prior: np.ndarray | None = None,
    ) -> list[Prediction]:
        """The most probable label sequence of each text (greedy or beam search).

        Greedy search runs in two passes, because a batch's loop lasts as long as its
        longest label sequence while most documents stop after a label or two: first
        every document with at most `FIRST_PASS_LABELS` labels, then, for the few that
        reached that cap without choosing EOS themselves, the full search again. Greedy
        steps before the cap do not depend on it, so the result is the one-pass search's
        (up to float rounding across batch compositions). Beam search runs in one pass.

        Args:
            texts: raw documents.
            beam_size: 1 for greedy search, more for beam search.
            max_labels: most labels per document (default: the model's).
            batch_size: documents per compiled call (default: `predict_batch_size`).
            prior: float `(len(texts), num_labels)` added to every step's label logits, or None.
        """
        max_labels = self.label_limit(max_labels)
        if beam_size > 1 or max_labels <= FIRST_PASS_LABELS or self.model.min_labels >= FIRST_PASS_LABELS:
            return self._search_batches(texts, beam_size, max_labels, batch_size, prior)
        predictions = self._search_batches(texts, 1, FIRST_PASS_LABELS, batch_size, prior)
        capped = [i for i, p in enumerate(predictions) if len(p.labels) == FIRST_PASS_LABELS]
        if capped:
            again = self._search_batches(
                [texts[i] for i in capped], 1, max_labels, batch_size, None if prior is None else prior[capped]
            )
            for i, prediction in zip(capped, again):
                predictions[i] = prediction
        return predictions

    def _search_batches(self, texts, beam_size, max_labels, batch_size, prior=None) -> list[Prediction]:
        """One compiled search per batch of `texts`."""
        predictions = []
        for ids, probs, log_prob in self._batches(texts, batch_size, prior, beam_size, max_labels):
            emitted = _emitted(ids)
            for row_ids, row_probs, row_emitted, row_log_prob in zip(ids, probs, emitted, log_prob.tolist()):
                predictions.append(
                    Prediction(
                        labels=self.vocab.to_labels(row_ids),
                        scores=row_probs[row_emitted].tolist(),
                        log_prob=row_log_prob,
                    )
                )
        return predictions

    def _batches(self, texts, batch_size, prior, *settings, **options):
        """Yields the numpy outputs of `generate_function(*settings, **options)` for each batch of `texts`."""
        batch_size = search_batch_size(batch_size or predict_batch_size(self.model.sequence_length), settings[0])
        generate = self.generate_function(*settings, **options)
        for start in range(0, len(texts), batch_size):
            batch = [str(t) for t in texts[start : start + batch_size]]
            if prior is None:
                batch_prior = np.zeros((len(batch), self.vocab.num_labels))
            else:
                batch_prior = prior[start : start + batch_size]
            yield tuple(
                x.numpy() for x in generate(tf.constant(batch, tf.string), tf.constant(batch_prior, tf.float32))
            )

    def marginals(
        self, texts: Sequence[str], beam_size: int, max_labels: int | None = None, batch_size=None, prior=None
    ) -> np.ndarray:
        """Each label's share of the beam's probability mass, `(len(texts), num_labels)`.

        A beam search keeps `beam_size` label sequences per text; each label scores the
        summed probability (normalised over the beam) of the hypotheses that hold it: an
        estimate of P(label in the set) from the sequence model. `prior`: as for `decode`.
        """
        batch_size = search_batch_size(batch_size or predict_batch_size(self.model.sequence_length), beam_size)
        marginals = np.zeros((len(texts), self.vocab.num_labels), np.float32)
        batches = self._batches(texts, batch_size, prior, beam_size, max_labels, return_beams=True)
        for start, (ids, _, scores) in zip(range(0, len(texts), batch_size), batches):  # (b, beam, steps), (b, beam)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            rows, beams, steps = np.nonzero(_emitted(ids))
            np.add.at(marginals, (start + rows, ids[rows, beams, steps] - NUM_SPECIAL), weights[rows, beams])
        return marginals

    def head_probabilities(self, texts: Sequence[str], batch_size=None) -> np.ndarray:
        """The label head's sigmoid per label `(len(texts), num_labels)` (models with `label_loss_weight`)."""
        model = self.model
        if model.label_head is None:
            raise ValueError("this model has no label head (train with --label-loss-weight above 0)")
        if "head" not in self._functions:
            self._functions["head"] = _text_function(
                lambda token_ids: ops.sigmoid(model.label_head(model.read(token_ids, training=False)[0])), model
            )
        return _batched(self._functions["head"], texts, model.sequence_length, self.vocab.num_labels, batch_size)

    def explain(self, text: str, labels: Sequence[str]) -> Explanation:
        """The attention weights behind each of `labels` (generated in that order) for `text`."""
        model = self.model
        token_ids = np.asarray(model.text_vectorizer(np.array([text])))  # (1, sequence_length)
        length = int(np.count_nonzero(token_ids[0]))
        vocabulary = model.text_vectorizer.get_vocabulary()
        decoder_input = np.array([[BOS_ID, *(self.vocab.id(label) for label in labels[:-1])]], dtype="int32")
        weights = np.asarray(model.attention_weights(token_ids, decoder_input))  # (1, steps, sequence_length)
        return Explanation(
            tokens=[vocabulary[i] for i in token_ids[0, :length]],
            labels=list(labels),
            weights=weights[0, : len(labels), :length],
        )


class BinaryRelevanceInference:
    """A `BinaryRelevanceModel` run over raw texts: its sigmoid per label, in compiled batches."""

    def __init__(self, model):
        self.model = model
        self._scores = _text_function(lambda token_ids: ops.sigmoid(model(token_ids, training=False)), model)

    def scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Label probabilities `(len(texts), num_labels)`."""
        return _batched(self._scores, texts, self.model.sequence_length, len(self.model.labels), batch_size)


def _emitted(ids: np.ndarray) -> np.ndarray:
    """Where `ids` (`(..., steps)`, from the search) hold a label: an id >= NUM_SPECIAL before the row's EOS."""
    return (ids >= NUM_SPECIAL) & (np.cumsum(ids == EOS_ID, axis=-1) == 0)


def _text_function(function, model):
    """`function(token_ids) -> (batch, num_labels)` compiled on raw strings `(batch,)`."""
    return tf.function(
        lambda texts: function(model.text_vectorizer(texts)),
        input_signature=[tf.TensorSpec([None], tf.string)],
        autograph=False,
    )


def _batched(function, texts, sequence_length: int, width: int, batch_size: int | None = None) -> np.ndarray:
    """`function` over `texts` in batches, concatenated: `(len(texts), width)`."""
    batch_size = batch_size or predict_batch_size(sequence_length)
    chunks = [
        function(tf.constant([str(t) for t in texts[i : i + batch_size]], tf.string)).numpy()
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)
