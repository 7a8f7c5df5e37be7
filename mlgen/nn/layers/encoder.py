"""Kim-style CNN text encoder: embedding, parallel Conv1D widths, max-over-time pooling."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="mlgen")
class CNNTextEncoder(keras.layers.Layer):
    """Reads token ids into a text feature vector (Kim, 2014).

    Every size and rate is explicit: mlgen builds it from `ModelConfig`, where the
    defaults live (`mlgen.nn.backbone.CNNTextModel`).

    Args:
        vocab_size: number of token ids (id 0 is padding).
        embedding_dim: token embedding size.
        filter_sizes: widths of the parallel convolutions.
        num_filters: filters per width.
        dropout: dropout rate on the feature vector.
        word_dropout: in training, the share of real tokens replaced by the
            out-of-vocabulary id (1, as `TextVectorization` numbers it), so the
            features do not hang on single words that later text may not have.
        embeddings_initializer: initializer of the embedding matrix, e.g.
            `keras.initializers.Constant(matrix)` for pretrained vectors.

    Call arguments:
        token_ids: int tensor `(batch, length)`, 0 for padding; `length` must be at
            least `max(filter_sizes)`.
        training: whether dropout (and word dropout) is on.
        return_positions: also return what attention reads (`position_features`),
            from the same pass of the convolutions.

    Returns:
        The text feature vector, `(batch, len(filter_sizes) * num_filters)`; with
        `return_positions`, `(features, (memory, mask))`.

    Example:
        >>> encoder = CNNTextEncoder(100, 8, filter_sizes=(2, 3), num_filters=4, dropout=0.3, word_dropout=0.1)
        >>> encoder(np.ones((2, 10), "int32")).shape
        (2, 8)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        filter_sizes,
        num_filters: int,
        dropout: float,
        word_dropout: float,
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.filter_sizes = tuple(filter_sizes)
        self.num_filters = num_filters
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, embeddings_initializer=self.embeddings_initializer, name="embedding"
        )
        self.convolutions = [
            keras.layers.Conv1D(num_filters, width, activation="relu", name=f"conv_{width}")
            for width in self.filter_sizes
        ]
        self.dropout_layer = keras.layers.Dropout(dropout)
        # A seed generator only when it is used (as keras.layers.Dropout). Its seed comes from
        # NumPy's global generator, not Python's `random` that Keras draws initializer seeds
        # from, so turning word dropout on leaves every layer's initial weights as they were.
        self.seed_generator = keras.random.SeedGenerator(int(np.random.randint(1, 10**9))) if word_dropout > 0 else None

    @property
    def output_dim(self) -> int:
        return len(self.filter_sizes) * self.num_filters

    def build(self, input_shape):
        self.embedding.build(input_shape)
        embedded_shape = (*input_shape, self.embedding_dim)
        for conv in self.convolutions:
            conv.build(embedded_shape)

    def feature_maps(self, token_ids):
        """Per-width convolution outputs, each `(batch, length - width + 1, num_filters)`."""
        embedded = self.embedding(token_ids)  # (batch, length, embedding_dim)
        return [conv(embedded) for conv in self.convolutions]

    def position_features(self, token_ids, maps=None):
        """What attention looks at: every width's features for the window starting at each token.

        `maps`: `feature_maps(token_ids)`, if already computed.

        Returns:
            `(memory, mask)`: memory `(batch, length, len(filter_sizes) * num_filters)`,
            each width's maps padded with zeros at the end (windows running past the
            text); mask bool `(batch, length)`, True where the token is real (id > 0).
        """
        length = ops.shape(token_ids)[1]
        maps = [
            ops.pad(m, [[0, 0], [0, width - 1], [0, 0]]) if width > 1 else m
            for m, width in zip(self.feature_maps(token_ids) if maps is None else maps, self.filter_sizes)
        ]
        memory = ops.concatenate(maps, axis=-1)[:, :length, :]
        return memory, ops.greater(token_ids, 0)

    def drop_words(self, token_ids):
        """`token_ids` with a random `word_dropout` share of the real ones set to 1 (out of vocabulary)."""
        dropped = keras.random.uniform(ops.shape(token_ids), seed=self.seed_generator) < self.word_dropout
        dropped = ops.logical_and(dropped, ops.greater(token_ids, 0))  # padding stays padding
        return ops.where(dropped, ops.ones_like(token_ids), token_ids)

    def call(self, token_ids, training=None, return_positions=False):
        if training and self.word_dropout > 0:
            token_ids = self.drop_words(token_ids)
        maps = self.feature_maps(token_ids)
        pooled = [ops.max(m, axis=1) for m in maps]  # each (batch, num_filters)
        features = ops.concatenate(pooled, axis=-1)  # (batch, len(filter_sizes) * num_filters)
        features = self.dropout_layer(features, training=training)
        return (features, self.position_features(token_ids, maps)) if return_positions else features

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            embedding_dim=self.embedding_dim,
            filter_sizes=list(self.filter_sizes),
            num_filters=self.num_filters,
            dropout=self.dropout,
            word_dropout=self.word_dropout,
            # The weights carry pretrained vectors; the config only needs a cheap initializer.
            embeddings_initializer=keras.initializers.serialize(
                self.embeddings_initializer
                if not isinstance(self.embeddings_initializer, keras.initializers.Constant)
                else keras.initializers.get("uniform")
            ),
        )
        return config
