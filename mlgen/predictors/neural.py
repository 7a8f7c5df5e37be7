"""What the two Keras model types (cnn-rnn, cnn-br) share: fitting, saving and loading a network.

`NeuralPredictor.fit` builds the vocabulary and the network, runs the one training
loop (`mlgen.nn.training.train_network`), fits the linear-br ensemble beside it and
calibrates on dev; subclasses say which network (`network`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlgen import artifacts
from mlgen.config import Configs, to_dict
from mlgen.data import LabelVocabulary
from mlgen.data.stream import LabelledStream
from mlgen.data.summary import DataSummary
from mlgen.nn import distribute, prediction, tfidf, training
from mlgen.predictors import ensemble
from mlgen.predictors.base import Predictor


class NeuralPredictor(Predictor):
    """A predictor around a Keras network (`self.model`), saved as `model.keras`.

    Subclasses set `network`, the Keras class (what it trains on is `mlgen.nn.targets`').
    Predictions run the compiled prediction function (`graph`).
    """

    network: type = None
    model = None
    _graph = None

    @property
    def graph(self):
        """The compiled prediction function (`mlgen.nn.prediction.PredictionGraph`): the network, with
        the linear-br ensemble's TF-IDF and margins as TensorFlow ops."""
        if self._graph is None:
            self._graph = prediction.PredictionGraph(
                self.vocab.num_labels,
                self.model,
                linear=self._linear_margins,
                sequence_length=self.model.sequence_length,
            )
        return self._graph

    def _linear_margins(self):
        return tfidf.from_linear(self.linear) if self.linear is not None else None

    def outputs(self, texts, rule, ranking, max_labels, calibration=None) -> dict:
        return self.graph.predict(texts, rule, ranking, max_labels, calibration=calibration)

    @classmethod
    def fit(cls, train, dev, configs: Configs, config: dict, *, log_dir=None, verbose=0):
        # Under a `TF_CONFIG` of several workers, the network is built and trained by all of them.
        strategy = distribute.strategy()
        training.set_seed(configs.train.seed)
        streamed = isinstance(train, LabelledStream)
        summary = train.summary if streamed else DataSummary.of(train)
        # A streamed run adapts its text vocabulary on, and fits its ensemble to, its sample.
        in_memory = train.sample if streamed else train
        # "shuffle" and "model" reorder each document's labels as they train; ids still follow frequency.
        order = configs.model.label_order
        vocab = LabelVocabulary.from_counts(
            summary.label_counts, order="frequency" if order in ("shuffle", "model") else order
        )
        # Only a type that reads `min_labels` (cnn-rnn) is refused a `min_labels` no document can get.
        model_config = training.resolve_config(configs.model, summary, check_min_labels="min_labels" in config["model"])
        cls.check_sizes(model_config, vocab)
        resolved = to_dict(model_config)
        config["model"].update((key, resolved[key]) for key in config["model"])
        report = vocab.unknown_report(dev)
        if report:
            training.say(report, verbose)
        configs = Configs(model_config, configs.train, configs.baseline)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = training.build_network(cls.network, vocab, in_memory.texts, model_config, configs.train, verbose)
            predictor = cls(model, vocab, config)
            result = training.train_network(
                model, predictor, train, dev, vocab, configs.train, log_dir=log_dir, verbose=verbose
            )
        predictor.history = result.pop("history")
        predictor.metrics = result
        if strategy is not None and not distribute.is_chief():
            return predictor  # the chief alone fits the ensemble, calibrates and writes
        # The ensemble joins only now: epochs are scored on the network alone.
        predictor.linear = ensemble.fit(in_memory, vocab, configs)
        # The best epoch's weights are back: tune what decoding adds (cnn-rnn) or the threshold (cnn-br),
        # and the ensemble's weights.
        predictor.calibrate(dev)
        predictor.fit_calibration(dev)
        return predictor

    def _write_model(self, folder: Path) -> None:
        self.model.save(folder / artifacts.MODEL)
