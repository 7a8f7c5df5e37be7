"""cnn-br: the CNN-RNN model's very encoder with one sigmoid output per label."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mlgen import artifacts
from mlgen.model import CNNTextModel
from mlgen.predict import ScoringPredictor, load_keras, predict_batch_size, read_ensemble
from mlgen.vocab import LabelVocabulary


@keras.saving.register_keras_serializable(package="mlgen")
class BinaryRelevanceModel(CNNTextModel):
    """Text in, one logit per label out. Holds its text vectorizer.

    Args:
        labels: label names, one output column each.
        max_tokens, sequence_length, embedding_dim, filter_sizes, num_filters,
            dropout, word_dropout: see `CNNTextModel`.

    Call arguments:
        token_ids: int `(batch, sequence_length)`.

    Returns:
        Logits `(batch, len(labels))`; train with binary cross-entropy.
    """

    def __init__(self, labels, **kwargs):
        super().__init__(labels, **kwargs)
        self.head = keras.layers.Dense(len(self.labels), name="head")
        self._scores_function = None

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.head.build((None, self.encoder.output_dim))
        self.built = True

    def call(self, token_ids, training=None):
        return self.head(self.encoder(token_ids, training=training))  # (batch, num_labels)

    def scores_function(self):
        """Raw strings `(batch,)` -> label probabilities `(batch, num_labels)`, compiled once."""
        if self._scores_function is None:
            self._scores_function = tf.function(
                lambda texts: keras.ops.sigmoid(self(self.text_vectorizer(texts), training=False)),
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            )
        return self._scores_function


class CNNBRPredictor(ScoringPredictor):
    """A trained `BinaryRelevanceModel`; scores are sigmoid probabilities."""

    model_type = "cnn-br"

    def __init__(self, model: BinaryRelevanceModel, vocab: LabelVocabulary, config: dict, threshold=0.5):
        super().__init__(vocab, config, threshold)
        self.model = model

    def scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        batch_size = batch_size or predict_batch_size(self.model.sequence_length)
        score = self.model.scores_function()
        chunks = [
            score(tf.constant([str(t) for t in texts[i : i + batch_size]], tf.string)).numpy()
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)), np.float32)

    def _write_model(self, folder: Path) -> None:
        self.model.save(folder / artifacts.MODEL)

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> CNNBRPredictor:
        predictor = cls(load_keras(folder, config, vocab, BinaryRelevanceModel), vocab, config)
        predictor.linear = read_ensemble(folder, vocab, config)
        return predictor
