"""cnn-br's network: the CNN-RNN model's very encoder with one sigmoid output per label.

What it trains on (multi-hot targets, binary cross-entropy) lives in `mlgen.nn.targets`.
"""

from __future__ import annotations

import keras

from mlgen.config import ModelConfig
from mlgen.nn.backbone import CNNTextModel


@keras.saving.register_keras_serializable(package="mlgen")
class BinaryRelevanceModel(CNNTextModel):
    """Text in, one logit per label out. Holds its text vectorizer.

    Args:
        labels: label names, one output column each.
        config: the hyperparameters; the network reads the encoder's (see `CNNTextModel`).

    Call arguments:
        token_ids: int `(batch, sequence_length)`.

    Returns:
        Logits `(batch, len(labels))` (trained with binary cross-entropy:
        `mlgen.nn.targets.BinaryRelevanceTargets`).
    """

    def __init__(self, labels, config: ModelConfig, **kwargs):
        super().__init__(labels, config, **kwargs)
        self.head = keras.layers.Dense(len(self.labels), name="head")

    def input_shapes(self):
        """What `build` takes: token ids `(batch, sequence_length)`."""
        return (None, self.sequence_length)

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.head.build((None, self.encoder.output_dim))
        self.built = True

    def call(self, token_ids, training=None):
        return self.head(self.encoder(token_ids, training=training))  # (batch, num_labels)
