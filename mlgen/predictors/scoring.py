"""Binary relevance: one score per label, a label predicted when its score reaches a threshold
tuned on dev. The base of `cnn-br` and `linear-br`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import BaselineConfig, from_dict, save_json
from mlgen.data import LabelledData, LabelVocabulary, Prediction, check_texts, scored_predictions
from mlgen.eval import metrics, thresholds
from mlgen.predictors import ensemble
from mlgen.predictors.base import DEV_SCORES, Predictor, check_count, check_dev_scores, check_fitted_number, dev_truth


class ScoringPredictor(Predictor):
    """Binary relevance: one score per label, a label predicted when it reaches the threshold.

    Subclasses give `scores(texts) -> (n_docs, num_labels)`. The threshold (one, or one
    per label) is tuned on dev by `calibrate` and saved in `thresholds.json`, with the
    weights of a linear-br ensemble (cnn-br with `ensemble="linear-br"`).

    Attributes:
        threshold: a float or a float array `(num_labels,)`.
        per_label: `calibrate` tunes one threshold per label.
        always_top: a document nothing reaches gets its top-scoring label.
        linear_weight, linear_mix: with `linear`, the label scores are
            `(1 - linear_mix) * sigmoid(logit(p) + linear_weight * margin) + linear_mix
            * sigmoid(margin)` of the network's probability `p` and linear-br's margin.
        dev_scores: dev scores of the network alone and with the ensemble, as
            `calibrate` compared them.
    """

    def __init__(self, vocab: LabelVocabulary, config: dict, threshold=0.0):
        super().__init__(vocab, config)
        baseline = from_dict(BaselineConfig, config.get("baseline", {}))
        self.per_label = baseline.threshold == "per-label"
        self.always_top = baseline.always_top
        self.threshold = threshold
        self.linear_weight = self.linear_mix = 0.0
        self.dev_scores: dict = {}

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """The model's own per-label scores `(len(texts), num_labels)`; larger means more likely."""
        raise NotImplementedError

    @property
    def score_range(self) -> tuple[float, float] | None:
        """The range of the scores the threshold applies to (`(0, 1)` for probabilities), or None
        for any finite number (margins)."""
        return (0.0, 1.0)

    @property
    def ensemble_weights(self) -> dict | None:
        if self.linear is None:
            return None
        return {"linear_weight": self.linear_weight, "linear_mix": self.linear_mix}

    def label_scores(self, texts: Sequence[str]) -> np.ndarray:
        """The scores the threshold applies to `(len(texts), num_labels)`: `scores`, combined
        with the linear-br ensemble's margins when there is one."""
        scores = self.scores(texts)
        if self.linear is None or not (self.linear_weight or self.linear_mix):
            return scores
        return ensemble.fused_scores(scores, self.linear.margins(texts), self.linear_weight, self.linear_mix)

    def calibrate(self, dev: LabelledData) -> None:
        """Tunes the threshold for the best dev micro-F1 (`mlgen.eval.thresholds.tune`).

        With a linear-br ensemble, first its weights: every pair of `ensemble.LINEAR_WEIGHTS` and
        `ensemble.LINEAR_MIXES` (0 and 0, the network alone, first) is scored on dev with a global
        threshold cross-fitted over two halves of dev (`mlgen.eval.thresholds.cross_fit`), as
        cnn-rnn's `fit_decision` scores its rules; the best is kept (ties: the first).
        """
        y_true, missed_per_doc = dev_truth(self.vocab, dev)
        missed = int(missed_per_doc.sum())
        scores = self.scores(dev.texts)
        if self.linear is not None:
            halves, margins = thresholds.halves(len(dev)), self.linear.margins(dev.texts)
            candidates = []
            for weight in (0.0, *ensemble.LINEAR_WEIGHTS):
                for mix in (0.0, *ensemble.LINEAR_MIXES):
                    fused = ensemble.fused_scores(scores, margins, weight, mix)
                    chosen = thresholds.cross_fit(fused, y_true, halves, self.always_top, missed_per_doc)
                    candidates.append(
                        (metrics.evaluate(dev.label_sets, self.vocab.from_multi_hot(chosen), self.labels), weight, mix)
                    )
            best = max(candidates, key=lambda c: c[0]["micro_f1"])
            _, self.linear_weight, self.linear_mix = best
            self.dev_scores = {
                "network": {key: candidates[0][0][key] for key in DEV_SCORES},
                artifacts.LINEAR_BR: {key: best[0][key] for key in DEV_SCORES},
            }
            if self.linear_weight or self.linear_mix:
                scores = ensemble.fused_scores(scores, margins, self.linear_weight, self.linear_mix)
        self.threshold = thresholds.tune(scores, y_true, self.per_label, self.always_top, missed)

    def serving(self, beam_size: int | None = None, decision: str | None = None):
        self._check_decoding(beam_size, decision)
        from mlgen.nn import serving  # TensorFlow: only to export

        scores, tracked = self.serving_scores()
        linear = ensemble.serving_margins(self.linear, bool(self.linear_weight or self.linear_mix))
        return serving.threshold_module(
            self.labels, scores, self.threshold, self.always_top, tracked, linear, self.linear_weight, self.linear_mix
        )

    def _check_decoding(self, beam_size, decision) -> None:
        """The last guard, for Python callers, against a search's options, which binary relevance
        does not take: its model type's entry says so (`mlgen.registry.ModelType.check_decoding`;
        the CLI asks the table before it gets here)."""
        if beam_size is not None or decision is not None:
            self.entry.check_decoding(beam_size, decision)

    def serving_scores(self):
        """`(scores, tracked)`: `scores(texts)` in TensorFlow, the counterpart of `scores`, and
        the objects it uses (`mlgen.nn.serving`)."""
        raise NotImplementedError

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[Prediction]:
        """Labels that reach the threshold, highest score first, with their scores.

        `log_prob` is None: binary relevance scores each label on its own.
        """
        self._check_decoding(beam_size, decision)
        why = f" (this model has {self.vocab.num_labels} labels)"
        max_labels = check_count(max_labels, "max_labels", 1, self.vocab.num_labels, why)
        texts = check_texts(texts)
        if not texts:
            return []
        scores = self.label_scores(texts)
        return scored_predictions(
            self.labels, scores, thresholds.apply(scores, self.threshold, self.always_top), max_labels
        )

    def write(self, folder) -> None:
        super().write(folder)
        calibrated = {"threshold": np.asarray(self.threshold).tolist()}
        if self.linear is not None:
            calibrated.update(linear_weight=self.linear_weight, linear_mix=self.linear_mix, dev_scores=self.dev_scores)
        save_json(calibrated, Path(folder) / artifacts.THRESHOLDS)

    @classmethod
    def load(cls, folder) -> ScoringPredictor:
        predictor = super().load(folder)
        name = artifacts.THRESHOLDS
        calibrated = artifacts.read_json(folder, name)
        low, high = predictor.score_range or (None, None)
        slack = 1e-3 if high is not None else 0.0  # a cut above every probability lies just over 1
        threshold = calibrated.get("threshold")
        if isinstance(threshold, list):
            if len(threshold) != predictor.vocab.num_labels:
                raise artifacts.damaged(
                    folder, name, f'needs {predictor.vocab.num_labels} numbers, one per label, under "threshold"'
                )
            threshold = np.asarray(
                [
                    check_fitted_number(folder, name, f"threshold[{i}]", t, low, high, slack=slack)
                    for i, t in enumerate(threshold)
                ],
                dtype=np.float64,
            )
        elif threshold is None:
            raise artifacts.damaged(folder, name, 'needs a number under "threshold"')
        else:
            threshold = check_fitted_number(folder, name, "threshold", threshold, low, high, slack=slack)
        predictor.threshold = threshold
        if predictor.linear is not None:
            if "linear_weight" not in calibrated or "linear_mix" not in calibrated:
                raise artifacts.damaged(folder, name, "needs the linear-br ensemble's linear_weight and linear_mix")
            predictor.linear_weight = check_fitted_number(
                folder, name, "linear_weight", calibrated["linear_weight"], 0, ensemble.MAX_LINEAR_WEIGHT
            )
            predictor.linear_mix = check_fitted_number(folder, name, "linear_mix", calibrated["linear_mix"], 0, 1)
            predictor.dev_scores = check_dev_scores(folder, name, calibrated.get("dev_scores", {}))
        return predictor
