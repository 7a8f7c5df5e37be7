"""`linear-br`: TF-IDF + one linear classifier per label, thresholded. Never imports TensorFlow."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import Configs
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.decisions import ArrayOps
from mlgen.eval import metrics
from mlgen.linear import LinearBR
from mlgen.predictors.base import read_linear
from mlgen.predictors.scoring import ScoringPredictor


class LinearBRPredictor(ScoringPredictor):
    """A trained `LinearBR`: scores are SVM margins (`classifier="svc"`) or logistic-regression
    probabilities (`"logreg"`), computed in float32 from the saved arrays, so a reloaded model
    predicts exactly what the trained one did."""

    def __init__(self, model: LinearBR, vocab: LabelVocabulary, config: dict, threshold=0.0):
        super().__init__(vocab, config, threshold)
        self.model = model

    def dev_ops(self, texts) -> ArrayOps:
        return ArrayOps(network=self.model.scores(texts))

    def outputs(self, texts, rule, ranking, max_labels, calibration=None) -> dict:
        """In NumPy: linear-br predicts without TensorFlow."""
        ops = ArrayOps(network=self.model.scores(texts), max_labels=max_labels)
        outputs = rule.outputs(ops)
        if ranking is not None:
            scores = ranking.scores(ops)
            outputs["label_scores"] = scores.astype(np.float32)
            if calibration is not None:
                outputs["probabilities"] = calibration.apply(ops, scores).astype(np.float32)
        return outputs

    @property
    def score_range(self) -> tuple[float, float] | None:
        return (0.0, 1.0) if self.model.config.classifier == "logreg" else None  # svc: margins

    def serving(self, beam_size: int | None = None, decision: str | None = None, metric: str | None = None):
        """The model's TF-IDF and classifiers as TensorFlow ops, its decision rule on them."""
        from mlgen.nn import prediction, tfidf  # TensorFlow: only to export

        self.graph = prediction.PredictionGraph(
            self.vocab.num_labels,
            linear=lambda: tfidf.from_linear(self.model),
            logistic=self.model.config.classifier == "logreg",
        )
        return super().serving(beam_size, decision, metric)

    @classmethod
    def fit(
        cls, train: LabelledData, dev: LabelledData, configs: Configs, config: dict, *, log_dir=None, verbose=0
    ) -> LinearBRPredictor:
        """Fits TF-IDF and one classifier per label on `train`, then the threshold on `dev`
        (`log_dir` is unused: there are no epochs to log)."""
        started = time.perf_counter()
        vocab = LabelVocabulary.build(train.label_sets)
        model = LinearBR.fit(train.texts, vocab.to_multi_hot(train.label_sets), configs.baseline, configs.train.seed)
        predictor = cls(model, vocab, config)
        predictor.metrics = {"n_features": model.n_features, "fit_seconds": round(time.perf_counter() - started, 2)}
        predictor.calibrate(dev)
        predictor.fit_calibration(dev)
        if verbose:
            f1 = metrics.evaluate(dev.label_sets, predictor.predict(dev.texts), vocab.labels)["micro_f1"]
            print(
                f"linear-br: {model.n_features} TF-IDF features, {vocab.num_labels} labels; dev micro-F1 {f1:.4f}",
                file=sys.stderr,
            )
        return predictor

    def _write_model(self, folder: Path) -> None:
        self.model.save(folder / artifacts.LINEAR)

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> LinearBRPredictor:
        return cls(read_linear(folder, config, vocab.num_labels), vocab, config)
