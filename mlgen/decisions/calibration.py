"""Calibrating scores into probabilities on dev. NumPy only.

`Calibration` is the map `predict_proba` applies to a model's label scores, written once
against `ops` (as the rules are: NumPy's `ArrayOps`, TensorFlow's `GraphOps` in the exported
graph); `fit` chooses it on dev among the methods of `METHODS`, each scored by the Brier score
of probabilities it was not fitted on (two-fold cross-fitting over dev documents), a more flexible
map only where it wins clearly.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mlgen.decisions.rules import ArrayOps, bounded

# The maps `fit` tries, simplest first (see `fit`), named as scikit-learn's `CalibratedClassifierCV`
# names them: the scores as they are (`none`; probabilities only), `sigmoid(scale * z)` (`temperature`,
# one parameter), `sigmoid(scale * z + shift)` (`sigmoid`: Platt scaling), and a non-decreasing
# piecewise-linear map fitted by isotonic regression (`isotonic`), `z` the scores' logit (of a margin:
# the margin itself).
METHODS = ("none", "temperature", "sigmoid", "isotonic")
# How many standard errors of the paired per-document Brier gains a more flexible map must win by.
SIGNIFICANCE = 2.0
# The most knots an isotonic map keeps: half at quantiles of every dev pair's score, half at quantiles of the
# gold pairs' (where the map must be fine: almost every pair sits near 0); the map is linear between them.
ISOTONIC_KNOTS = 200
# The largest |scale| and |shift| a calibration file may hold.
MAX_PARAMETER = 1000.0

# Newton steps `platt` takes at most, the change of its parameters at which it stops, and the most
# times it halves one step that does not lower the loss.
PLATT_STEPS = 50
PLATT_TOLERANCE = 1e-8
PLATT_HALVINGS = 60


def platt(x: np.ndarray, y_true: np.ndarray, shift: bool = True) -> tuple[float, float]:
    """Platt scaling: `(scale, shift)` minimising the log-loss of `sigmoid(scale * x + shift)`
    against the 0/1 truth, every (document, label) pair one example (Newton's method).

    Args:
        x: scores `(n_docs, num_labels)` (a probability's logit, or a margin).
        y_true: 0/1 `(n_docs, num_labels)`.
        shift: fit the shift (else it stays 0: temperature scaling).

    Returns:
        `(scale, shift)`; `(1.0, 0.0)` without both classes.
    """
    x = np.asarray(x, np.float64).ravel()
    y = (np.asarray(y_true) > 0).ravel().astype(np.float64)
    finite = np.isfinite(x)  # a NaN score (a broken model) says nothing about the map
    x, y = x[finite], y[finite]
    if not x.size or y.min() == y.max():
        return 1.0, 0.0
    design = np.stack([x, np.ones_like(x)], axis=1) if shift else x[:, None]
    params = np.array([1.0, 0.0][: design.shape[1]])

    def loss(p):
        z = design @ p
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    current = loss(params)
    for _ in range(PLATT_STEPS):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ params)))
        gradient = design.T @ (p - y)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(len(params))
        step = np.linalg.solve(hessian, gradient)
        for _ in range(PLATT_HALVINGS):  # halve a step that does not lower the loss
            trial = params - step
            if loss(trial) <= current or np.abs(step).max() < PLATT_TOLERANCE:
                break
            step = step / 2
        else:
            break
        params, previous, current = trial, current, loss(trial)
        if np.abs(step).max() < PLATT_TOLERANCE or previous - current < 1e-12 * max(1.0, abs(previous)):
            break
    return float(params[0]), float(params[1]) if shift else 0.0


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A map from a model's label scores to probabilities, fitted on dev (`fit`).

    Attributes:
        method: one of `METHODS`.
        scale, shift: `sigmoid(scale * z + shift)` (`sigmoid`; `temperature`: shift 0; `none`: 1 and 0).
        knots, values: `isotonic`: the map's points `(z, probability)`, knots increasing.
        margins: the scores are margins, taken as they are (else probabilities, taken to
            their logit `z`).
    """

    name: ClassVar[str] = "calibration"

    method: str = bounded("none", kind="text")
    scale: float = bounded(1.0, low=-MAX_PARAMETER, high=MAX_PARAMETER)
    shift: float = bounded(0.0, low=-MAX_PARAMETER, high=MAX_PARAMETER)
    knots: tuple[float, ...] = bounded((), kind="numbers")
    values: tuple[float, ...] = bounded((), low=0.0, high=1.0, kind="numbers")
    margins: bool = bounded(False, kind="bool")

    def apply(self, ops, scores):
        """Probabilities `(batch, num_labels)` of `scores` `(batch, num_labels)`, by `ops`' primitives."""
        z = scores if self.margins else ops.logit(scores)
        if self.method == "isotonic":
            return ops.interp(z, self.knots, self.values)
        return ops.sigmoid(self.scale * z + self.shift)

    def problem(self) -> str | None:
        """What is wrong with the fields together, or None (`mlgen.decisions.policy` checks each)."""
        if self.method not in METHODS:
            return f'"calibration.method": "{self.method}", not one of {", ".join(METHODS)}'
        if self.method == "isotonic":
            if len(self.knots) < 2 or len(self.knots) != len(self.values):
                return "an isotonic calibration without as many values as knots (at least 2)"
            if np.any(np.diff(self.knots) <= 0) or np.any(np.diff(self.values) < 0):
                return "an isotonic calibration whose knots do not increase or whose values decrease"
        elif self.knots or self.values:
            return f"knots in a {self.method} calibration"
        if self.method == "none" and (self.scale, self.shift, self.margins) != (1.0, 0.0, False):
            return "a scale or shift, or margins, in a none calibration"
        if self.method == "temperature" and self.shift:
            return "a shift in a temperature calibration"
        return None


def fit(scores: np.ndarray, y_true: np.ndarray, margins: bool = False, methods=METHODS) -> Calibration:
    """The calibration of `methods` whose probabilities have the lowest Brier score on dev, cross-fitted
    (each half of the documents scored by the map fitted on the other), refitted on all of dev.

    `methods` go from the simplest to the most flexible; a later one replaces the best so far only
    when it lowers the cross-fitted Brier score by more than `SIGNIFICANCE` standard errors of the
    paired per-document differences (a flexible map must earn its variance).

    Args:
        scores: the dev documents' label scores `(n_docs, num_labels)` (`label_scores`).
        y_true: 0/1 `(n_docs, num_labels)`.
        margins: the scores are margins (`none` is then not a candidate).
        methods: among `METHODS`, simplest first.
    """
    unknown = sorted(set(methods) - set(METHODS))
    candidates = [m for m in methods if not (margins and m == "none")]  # margins are no probabilities
    if unknown or not candidates:
        raise ValueError(f"no calibration method to fit among {list(methods)} (known: {', '.join(METHODS)})")
    scores, y_true = np.asarray(scores, np.float64), np.asarray(y_true) > 0
    z = scores if margins else ArrayOps.logit(scores)
    halves = np.arange(len(z)) % 2 == 0
    best, best_brier = None, None
    for method in candidates:
        brier = np.zeros(len(z))  # per document, cross-fitted
        for fitted_on in (halves, ~halves):
            calibration = _fit_one(method, z[fitted_on], y_true[fitted_on], margins)
            probabilities = calibration.apply(ArrayOps, scores[~fitted_on])
            brier[~fitted_on] = np.nansum((probabilities - y_true[~fitted_on]) ** 2, axis=1)
        if best is None or _better(best_brier - brier):
            best, best_brier = method, brier
    return _fit_one(best, z, y_true, margins)


def _better(gain: np.ndarray) -> bool:
    """Whether per-document Brier gains `gain` `(n_docs,)` are positive beyond `SIGNIFICANCE` standard errors."""
    if len(gain) < 2:
        return False
    return float(gain.mean()) > SIGNIFICANCE * float(gain.std(ddof=1)) / np.sqrt(len(gain))


def _fit_one(method: str, z: np.ndarray, y_true: np.ndarray, margins: bool) -> Calibration:
    """`method`'s map fitted to the pairs of `z` (the scores' logits, or margins) and `y_true`."""
    if method == "none":
        return Calibration()
    if method in ("temperature", "sigmoid"):
        scale, shift = platt(z, y_true, shift=method == "sigmoid")
        # Both shrunk alike, so that the map's midpoint `-shift / scale` stays (near-separable dev data).
        shrink = min(1.0, MAX_PARAMETER / max(abs(scale), abs(shift), 1e-300))
        return Calibration(method, scale=scale * shrink, shift=shift * shrink, margins=margins)
    from sklearn.isotonic import IsotonicRegression  # scikit-learn's, not a copy

    flat, gold = z.ravel(), np.asarray(y_true).ravel() > 0
    flat, gold = flat[np.isfinite(flat)], gold[np.isfinite(flat)]
    quantiles = np.linspace(0.0, 1.0, ISOTONIC_KNOTS // 2)
    knots = np.unique(
        np.concatenate([np.quantile(part, quantiles) for part in (flat, flat[gold]) if part.size] or [[0.0]])
    )
    if len(knots) < 2:  # one score throughout: a flat map at its frequency
        knots = np.array([knots[0] - 1.0, knots[0] + 1.0])
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    values = isotonic.fit(flat, gold.astype(np.float64)).predict(knots) if flat.size else np.zeros(2)
    values = np.maximum.accumulate(np.clip(values, 0.0, 1.0))
    return Calibration("isotonic", knots=tuple(map(float, knots)), values=tuple(map(float, values)), margins=margins)
