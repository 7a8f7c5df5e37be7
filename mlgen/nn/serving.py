"""A trained model as a TensorFlow SavedModel: raw strings in, label names out, all in the graph.

`serving_default(texts)` takes a batch of strings `(batch,)` and returns
`labels` (string `(batch, k)`, padded with ""), `scores` (float32 `(batch, k)`, 0 after
the labels) and `num_labels` (int32 `(batch,)`), `k` the most labels in the batch. What
`Predictor.predict_scores` does in Python happens in TensorFlow ops here: the text
vectorizer, the network, the search (greedy or beam; `mlgen.nn.decoding`'s loop) and
the decision rule with its fitted numbers, and the linear-br ensemble's TF-IDF and
margins (`LinearMargins`), so TF Serving, TFX or any `tf.saved_model.load` runs the
model without mlgen.
"""

from __future__ import annotations

import tensorflow as tf

from mlgen.data.vocab import EOS_ID, NUM_SPECIAL

SIGNATURE = [tf.TensorSpec([None], tf.string, name="texts")]


class LinearMargins(tf.Module):
    """scikit-learn's `TfidfVectorizer` (lowercase, words of two or more word characters,
    n-grams joined by a space, idf, sublinear tf, L2 norm) and a linear classifier per label,
    as TensorFlow ops: texts `(batch,)` -> margins float32 `(batch, num_labels)`.

    Args:
        terms, idf: the TF-IDF vocabulary in column order and its idf `(n_features,)`.
        coef, intercept: `(num_labels, n_features)` and `(num_labels,)`.
        ngram_max, sublinear_tf: the features' settings.
    """

    def __init__(self, terms, idf, coef, intercept, ngram_max: int, sublinear_tf: bool):
        super().__init__(name="linear_margins")
        self.n_features = len(terms)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([str(t) for t in terms]), tf.range(self.n_features, dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.idf = tf.constant(idf, tf.float64)
        self.coef_t = tf.constant(tf.transpose(coef), tf.float32)  # (n_features, num_labels)
        self.intercept = tf.constant(intercept, tf.float32)
        self.ngram_max, self.sublinear_tf = ngram_max, sublinear_tf

    def __call__(self, texts):
        # `(?u)\b\w\w+\b` on the lowercased text: maximal runs of letters, digits and "_", two or more long.
        words = tf.strings.split(
            tf.strings.regex_replace(tf.strings.lower(texts, encoding="utf-8"), r"[^\pL\pN_]+", " ")
        )
        words = tf.ragged.boolean_mask(words, tf.strings.length(words, unit="UTF8_CHAR") >= 2)
        grams = tf.concat([tf.strings.ngrams(words, n, separator=" ") for n in range(1, self.ngram_max + 1)], axis=1)
        ids = self.table.lookup(grams)  # ragged (batch, grams), -1 for terms outside the vocabulary
        rows = tf.cast(ids.value_rowids(), tf.int64)
        known = ids.flat_values >= 0
        keys = tf.boolean_mask(rows, known) * self.n_features + tf.boolean_mask(ids.flat_values, known)
        unique, _, counts = tf.unique_with_counts(keys)
        counts = tf.cast(counts, tf.float64)
        term_frequency = 1.0 + tf.math.log(counts) if self.sublinear_tf else counts
        row, column = unique // self.n_features, unique % self.n_features
        values = term_frequency * tf.gather(self.idf, column)
        batch = tf.shape(texts, out_type=tf.int64)[0]
        norms = tf.sqrt(tf.math.unsorted_segment_sum(values * values, row, batch))
        values = values / tf.gather(norms, row)
        features = tf.sparse.reorder(
            tf.SparseTensor(tf.stack([row, column], axis=1), tf.cast(values, tf.float32), [batch, self.n_features])
        )
        return tf.sparse.sparse_dense_matmul(features, self.coef_t) + self.intercept


def threshold_choice(scores, threshold, always_top: bool):
    """`mlgen.eval.thresholds.apply` in TensorFlow: bool `(batch, num_labels)`."""
    chosen = tf.cast(scores, tf.float64) >= tf.constant(threshold, tf.float64)
    if always_top:
        top = tf.one_hot(tf.argmax(scores, axis=1), tf.shape(scores)[1], on_value=True, off_value=False)
        chosen = chosen | (top & ~tf.reduce_any(chosen, axis=1, keepdims=True))
    return chosen


def chosen_outputs(names, scores, chosen, min_labels: int = 0, max_labels: int | None = None) -> dict:
    """`mlgen.data.scored_predictions` in TensorFlow: the chosen labels, highest score first,
    then the best unchosen ones up to `min_labels`, at most `max_labels`, as the signature's outputs."""
    by_score = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
    unchosen = tf.cast(~tf.gather(chosen, by_score, batch_dims=1), tf.int32)
    order = tf.gather(by_score, tf.argsort(unchosen, axis=1, stable=True), batch_dims=1)  # chosen first
    count = tf.maximum(tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1), min_labels)
    if max_labels is not None:
        count = tf.minimum(count, max_labels)
    width = tf.reduce_max(tf.concat([count, [0]], axis=0))
    order = order[:, :width]
    shown = tf.range(width)[None, :] < count[:, None]
    return {
        "labels": tf.where(shown, tf.gather(names, order), ""),
        "scores": tf.where(shown, tf.gather(scores, order, batch_dims=1), 0.0),
        "num_labels": count,
    }


def sequence_outputs(names, ids, probs) -> dict:
    """The search's ids and step probabilities `(batch, steps)` as the signature's outputs:
    the labels before EOS, in generation order (`LabelVocabulary.to_labels`)."""
    emitted = (ids >= NUM_SPECIAL) & (tf.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=1) == 0)
    count = tf.reduce_sum(tf.cast(emitted, tf.int32), axis=1)
    width = tf.reduce_max(tf.concat([count, [0]], axis=0))
    shown = emitted[:, :width]
    labels = tf.gather(names, tf.maximum(ids[:, :width] - NUM_SPECIAL, 0))
    return {
        "labels": tf.where(shown, labels, ""),
        "scores": tf.where(shown, probs[:, :width], 0.0),
        "num_labels": count,
    }


def beam_marginals(ids, log_probs, num_labels: int):
    """`SequenceInference.marginals` in TensorFlow: each label's share of the beam's
    probability mass, from its hypotheses `(batch, beam, steps)` and their scores `(batch, beam)`."""
    weights = tf.nn.softmax(log_probs, axis=1)  # (batch, beam)
    emitted = (ids >= NUM_SPECIAL) & (tf.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=2) == 0)
    hot = tf.one_hot(ids - NUM_SPECIAL, num_labels) * tf.cast(emitted, tf.float32)[..., None]
    return tf.einsum("bk,bksl->bl", weights, hot)


class Serving(tf.Module):
    """What `save` writes: `serve(texts)` from `outputs(texts)` (the signature's outputs), with
    the objects it uses tracked so that their variables and tables are saved."""

    def __init__(self, outputs, tracked: dict):
        super().__init__(name="mlgen")
        for name, value in tracked.items():
            setattr(self, name, value)
        self.serve = tf.function(outputs, input_signature=SIGNATURE, autograph=False)


def sequence_module(inference, decision: dict, beam_size: int, linear: LinearMargins | None) -> Serving:
    """cnn-rnn (`SequenceInference`) with its fitted decision (`SequencePredictor.decision`):
    the most probable sequence of a `beam_size` search, or the marginal rule's mixed
    scores over its beam, thresholded. `linear`: the ensemble's margins, if it has weight."""
    model, vocab = inference.model, inference.vocab
    names = tf.constant(vocab.labels)
    weight, mix = decision.get("linear_weight", 0.0), decision.get("linear_mix", 0.0)
    head_weight = decision.get("head_weight", 0.0)

    def outputs(texts):
        margins = linear(texts) if linear is not None else None
        prior = weight * margins if weight else tf.zeros([tf.shape(texts)[0], vocab.num_labels])
        if decision["rule"] == "mode":
            ids, probs, _ = inference.generate(texts, prior, beam_size)
            return sequence_outputs(names, ids, probs)
        ids, _, log_probs = inference.generate(texts, prior, decision["beam_size"], return_beams=True)
        scores = (1.0 - head_weight - mix) * beam_marginals(ids, log_probs, vocab.num_labels)
        if head_weight:
            features = model.read(model.text_vectorizer(texts), training=False)[0]
            scores += head_weight * tf.sigmoid(model.label_head(features))
        if mix:
            scores += mix * tf.sigmoid(margins)
        chosen = threshold_choice(scores, decision["threshold"], always_top=model.min_labels > 0)
        return chosen_outputs(names, scores, chosen, model.min_labels, model.max_labels)

    return Serving(outputs, {"model": model, **({"linear": linear} if linear is not None else {})})


def network_scores(model):
    """cnn-br's sigmoid per label, from raw strings."""
    return lambda texts: tf.sigmoid(model(model.text_vectorizer(texts), training=False))


def linear_scores(linear: LinearMargins, logistic: bool):
    """linear-br's scores: its margins (`svc`), or their sigmoid (`logreg`)."""
    return (lambda texts: tf.sigmoid(linear(texts))) if logistic else linear


def threshold_module(
    labels, scores, threshold, always_top: bool, tracked: dict, linear=None, linear_weight=0.0, linear_mix=0.0
) -> Serving:
    """Binary relevance (`ScoringPredictor`): `scores(texts)`, fused with `linear`'s margins as
    `mlgen.predictors.ensemble.fused_scores` (when it has weight), thresholded."""
    names = tf.constant(list(labels))

    def outputs(texts):
        values = tf.cast(scores(texts), tf.float64)
        if linear is not None:
            margins = tf.cast(linear(texts), tf.float64)
            p = tf.clip_by_value(values, 1e-7, 1 - 1e-7)
            fused = tf.sigmoid(tf.math.log(p) - tf.math.log1p(-p) + linear_weight * margins)
            values = (1.0 - linear_mix) * fused + linear_mix * tf.sigmoid(margins)
        chosen = threshold_choice(values, threshold, always_top)
        return chosen_outputs(names, tf.cast(values, tf.float32), chosen)

    return Serving(outputs, {**tracked, **({"linear": linear} if linear is not None else {})})


def save(module: Serving, folder) -> None:
    """Writes `module` as a SavedModel whose `serving_default` signature is `module.serve`."""
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function()})
