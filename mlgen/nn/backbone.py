"""The CNN backbone that cnn-rnn and cnn-br share: text vectorizer and CNN encoder."""

from __future__ import annotations

import dataclasses

import keras

from mlgen.config import ModelConfig, from_dict, to_dict
from mlgen.nn import distribute
from mlgen.nn.layers.encoder import CNNTextEncoder

# `get_config` key of the hyperparameters (`ModelConfig` as a dict).
CONFIG_KEY = "model_config"


class CNNTextModel(keras.Model):
    """Label names, a `TextVectorization` layer and the `CNNTextEncoder`, built from a
    `ModelConfig`; subclasses add their heads (`LabelSequenceModel`, `BinaryRelevanceModel`).

    The config is the one place hyperparameters live: the network reads every size
    from it and saves it whole in its Keras config.

    What a network trains on and how is not the network's: the training loop attaches
    `training_targets` (`mlgen.nn.targets`), and every training and validation step
    trains on `training_targets.pairs(data)` instead of the data's batch.

    Args:
        labels: label names, in id order.
        config: the hyperparameters, with `sequence_length` (and for cnn-rnn
            `max_labels`) resolved to numbers (`mlgen.nn.training.resolve_config`).
    """

    # What the steps train on (`mlgen.nn.targets.for_network`), attached by `mlgen.nn.training`:
    # none on a network just built or loaded (never saved).
    training_targets = None

    def __init__(self, labels, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.labels = list(labels)
        self.model_config = config
        self.text_vectorizer = keras.layers.TextVectorization(
            max_tokens=config.max_tokens, output_sequence_length=config.sequence_length, name="text_vectorizer"
        )
        self.encoder = CNNTextEncoder(
            vocab_size=config.max_tokens,
            embedding_dim=config.embedding_dim,
            filter_sizes=config.filter_sizes,
            num_filters=config.num_filters,
            dropout=config.dropout,
            word_dropout=config.word_dropout,
            name="encoder",
        )

    @property
    def sequence_length(self) -> int:
        return self.model_config.sequence_length

    def train_step(self, data):
        logs = super().train_step(self._pairs(data))
        return distribute.vector_logs(logs) if distribute.is_multi_worker(self.distribute_strategy) else logs

    def test_step(self, data):
        logs = super().test_step(self._pairs(data))
        return distribute.vector_logs(logs) if distribute.is_multi_worker(self.distribute_strategy) else logs

    def _pairs(self, data):
        return data if self.training_targets is None else self.training_targets.pairs(data)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds from a distributed batch reduced across replicas, which a multi-worker
        # strategy cannot do eagerly (keras-team/keras#20585): build from one replica's share.
        # A private Keras hook with no public equivalent (`model.fit` calls it before any
        # public method could step in, and Keras's version reduces the batch even when the
        # model is already built); tests/test_keras_internals.py fails when Keras changes it.
        if not distribute.is_multi_worker(self.distribute_strategy) or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = distribute.local_batch(self.distribute_strategy, next(batches))
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def get_config(self):
        config = super().get_config()
        config.update(labels=self.labels, **{CONFIG_KEY: to_dict(self.model_config)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        labels = config.pop("labels")
        if CONFIG_KEY in config:
            return cls(labels, from_dict(ModelConfig, config.pop(CONFIG_KEY)), **config)
        # mlgen 0.2 saved the hyperparameters as flat constructor arguments.
        names = {field.name for field in dataclasses.fields(ModelConfig)}
        values = {key: config.pop(key) for key in list(config) if key in names}
        if config.pop("targets", "given") == "model":
            values["label_order"] = "model"
        return cls(labels, from_dict(ModelConfig, values), **config)
