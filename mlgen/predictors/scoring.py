"""Binary relevance: one score per label, a label predicted when its score reaches a threshold
tuned on dev. The base of `cnn-br` and `linear-br`."""

from __future__ import annotations

import numpy as np

from mlgen.config import BaselineConfig, from_dict
from mlgen.data import LabelledData
from mlgen.decisions import ArrayOps, DecisionPolicy, Threshold
from mlgen.decisions.fit import fit_threshold
from mlgen.predictors.base import Predictor


class ScoringPredictor(Predictor):
    """Binary relevance: one score per label, a label predicted when it reaches the threshold.

    The decision is one `mlgen.decisions.Threshold` rule: the threshold (one, or one per
    label) tuned on dev by `calibrate` and saved in `thresholds.json`, with the weights of a
    linear-br ensemble (cnn-br with `ensemble="linear-br"`). Subclasses give `dev_ops`, the
    scores of dev documents the fit needs.

    Attributes:
        per_label: `calibrate` tunes one threshold per label.
        always_top: a document nothing reaches gets its top-scoring label.
    """

    def __init__(self, vocab, config: dict, threshold=0.0):
        baseline = from_dict(BaselineConfig, config.get("baseline", {}))
        self.per_label = baseline.threshold == "per-label"
        self.always_top = baseline.always_top
        self._initial_threshold = threshold
        super().__init__(vocab, config)

    def default_decision(self) -> DecisionPolicy:
        return DecisionPolicy((Threshold(threshold=self._initial_threshold, always_top=self.always_top),))

    @property
    def threshold(self):
        """The fitted threshold: a float, or a float array `(num_labels,)`."""
        threshold = self.decision.default.threshold
        return np.asarray(threshold, np.float64) if isinstance(threshold, tuple) else threshold

    def dev_ops(self, texts) -> ArrayOps:
        """`ArrayOps` of `texts` with the model's scores and, with an ensemble, linear-br's margins."""
        raise NotImplementedError

    def calibrate(self, dev: LabelledData) -> None:
        """Fits a decision for each metric on dev: thresholds (and the ensemble's weights, on dev
        micro-F1) and the expected-F1 set (`mlgen.decisions.fit.fit_threshold`)."""
        self.decision = fit_threshold(
            dev,
            self.vocab,
            self.dev_ops(dev.texts),
            per_label=self.per_label,
            always_top=self.always_top,
            has_linear=self.linear is not None,
            probabilities=self.score_range is not None,
            metric=self.decision_metric,
        )

    def decision_limits(self) -> dict:
        low, high = self.score_range or (None, None)
        return {**super().decision_limits(), "score_low": low, "score_high": high}

    def legacy_decision(self, data: dict, damaged) -> dict:
        """`thresholds.json` of mlgen 0.2 and 0.3: `threshold`, and with an ensemble `linear_weight`,
        `linear_mix` and `dev_scores`, at the top level; `always_top` from `config.json`."""
        if data.get("threshold") is None:
            damaged('needs a number under "threshold"')
        rule = {"linear_weight": 0.0, "threshold": data["threshold"], "always_top": self.always_top, "linear_mix": 0.0}
        if self.linear is not None:
            if "linear_weight" not in data or "linear_mix" not in data:
                damaged("needs the linear-br ensemble's linear_weight and linear_mix")
            rule.update(linear_weight=data["linear_weight"], linear_mix=data["linear_mix"])
        return {"rule": "threshold", "rules": {"threshold": rule}, "dev_scores": data.get("dev_scores", {})}
