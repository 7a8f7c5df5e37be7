"""scikit-learn's TF-IDF features and linear classifiers as TensorFlow ops: the linear-br
ensemble's margins inside the compiled prediction function (`mlgen.nn.prediction`), and
linear-br's own model in its SavedModel export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


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
        self.coef_t = tf.constant(np.transpose(coef), tf.float32)  # (n_features, num_labels)
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


def from_linear(linear) -> LinearMargins:
    """`LinearMargins` of a fitted `mlgen.linear.LinearBR` (its vectorizer and classifiers)."""
    vectorizer = linear.vectorizer
    return LinearMargins(
        vectorizer.get_feature_names_out(),
        vectorizer.idf_,
        linear.coef,
        linear.intercept,
        linear.config.ngram_max,
        linear.config.sublinear_tf,
    )
