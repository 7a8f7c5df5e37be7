"""Decision thresholds for binary-relevance scores: tuned on dev, applied at predict time.

numpy only. Scores are any per-label numbers where larger means "more likely"
(probabilities, SVM margins); a label is predicted when its score reaches the threshold.
"""

from __future__ import annotations

import numpy as np


def apply(scores: np.ndarray, threshold, always_top: bool = False) -> np.ndarray:
    """Bool `(n_docs, n_labels)`: `scores >= threshold`.

    Args:
        scores: `(n_docs, n_labels)`.
        threshold: a number, or one per label `(n_labels,)`.
        always_top: also predict each document's top-scoring label when nothing
            reaches the threshold, so no document is left without a label.
    """
    # In float64: a tuned threshold halfway between two adjacent float32 scores must not
    # round onto the lower one.
    chosen = np.asarray(scores, dtype=np.float64) >= np.asarray(threshold, dtype=np.float64)
    if always_top and scores.shape[1]:
        empty = ~chosen.any(axis=1)
        chosen[empty, np.argmax(scores[empty], axis=1)] = True
    return chosen


def micro_f1(chosen: np.ndarray, y_true: np.ndarray) -> float:
    """Micro-F1 of bool predictions against a 0/1 `(n_docs, n_labels)` truth."""
    tp = np.count_nonzero(chosen & (y_true > 0))
    denominator = np.count_nonzero(chosen) + np.count_nonzero(y_true)
    return 2.0 * tp / denominator if denominator else 0.0


def tune(scores: np.ndarray, y_true: np.ndarray, per_label: bool = False, always_top: bool = False, missed: int = 0):
    """The threshold that maximises micro-F1 on dev (`apply` with the same `always_top`).

    Exact: every distinct score is tried as a cut (one sort, cumulative counts), and
    the threshold returned lies halfway between the best cut and the next lower score.

    Args:
        scores: dev scores `(n_docs, n_labels)`.
        y_true: dev truth, 0/1 `(n_docs, n_labels)`.
        per_label: also tune one threshold per label, each maximising that label's F1
            (labels without a dev positive keep the global threshold).
        always_top: the rule the threshold will be used with (the per-label cuts
            ignore the labels it forces).
        missed: dev gold labels outside the columns (no threshold can find them; they
            count as misses in the global micro-F1, as in `mlgen.eval.metrics.evaluate`).

    Returns:
        A float, or a float array `(n_labels,)` when `per_label`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y_true = np.asarray(y_true) > 0
    if not scores.size:
        return np.zeros(scores.shape[1]) if per_label else 0.0
    flat, truth = scores.ravel(), y_true.ravel()
    order = np.argsort(-flat, kind="stable")
    cuts, hits = flat[order], truth[order]
    tp = np.cumsum(hits)  # predicting every pair scoring >= cuts[k]
    predicted = np.arange(1, len(cuts) + 1)
    if always_top:
        # Documents whose best score is below the cut get their top label anyway.
        best = scores.max(axis=1)
        top_hit = y_true[np.arange(len(scores)), scores.argmax(axis=1)]
        by_best = np.argsort(best, kind="stable")
        below = np.searchsorted(best[by_best], cuts, side="left")
        forced_hits = np.concatenate([[0], np.cumsum(top_hit[by_best])])
        tp, predicted = tp + forced_hits[below], predicted + below
    f1 = 2.0 * tp / (predicted + truth.sum() + missed)
    best_cut = _best_cut(cuts, f1)
    if always_top:
        # One more candidate: above every score, so each document gets only its top label.
        top_only = 2.0 * top_hit.sum() / (len(scores) + truth.sum() + missed)
        valid = np.append(cuts[1:] < cuts[:-1], True)
        if top_only > np.max(np.where(valid, f1, -1.0)):
            best_cut = float(np.nextafter(cuts[0], np.inf))
    if not per_label:
        return best_cut
    thresholds = np.full(scores.shape[1], best_cut)
    for j in np.flatnonzero(y_true.any(axis=0)):
        order = np.argsort(-scores[:, j], kind="stable")
        hits = y_true[order, j]
        f1 = 2.0 * np.cumsum(hits) / (np.arange(1, len(hits) + 1) + hits.sum())
        thresholds[j] = _best_cut(scores[order, j], f1)
    return thresholds


def cross_fit(
    scores: np.ndarray,
    y_true: np.ndarray,
    halves: np.ndarray,
    always_top: bool,
    missed_per_doc=None,
    metric: str = "micro-f1",
    shrinkage: float | None = None,
):
    """Bool predictions `(n_docs, n_labels)` with each half of dev thresholded by the
    threshold tuned on the other half (`tune_for` `metric`).

    Scoring a tuned rule on these predictions does not favour it for having seen the
    documents it is scored on; comparing candidate rules (score mixes) by them is
    fairer to the rules without a threshold.

    Args:
        scores, y_true: as for `tune`.
        halves: `(n_docs,)` of 0 and 1: each document's half.
        always_top: as for `apply`.
        missed_per_doc: `(n_docs,)` gold labels outside the columns (see `tune`).
        metric, shrinkage: as for `tune_for`.
    """
    missed_per_doc = np.zeros(len(scores), int) if missed_per_doc is None else np.asarray(missed_per_doc)
    chosen = np.zeros(scores.shape, dtype=bool)
    for half in (0, 1):
        other = halves != half
        threshold = tune_for(scores[other], y_true[other], metric, always_top, missed_per_doc[other], shrinkage)
        chosen[~other] = apply(scores[~other], threshold, always_top=always_top)
    return chosen


# The most cuts `tune_for` tries for a metric without an exact sweep, and how many of each
# document's best scores they are drawn from.
MAX_CUTS = 200
CUT_POOL = 8


def halves(n_docs: int, seed: int = 0) -> np.ndarray:
    """`(n_docs,)` of 0 and 1, a seeded random split of dev into two halves (`cross_fit`)."""
    return np.random.default_rng(seed).permutation(n_docs) % 2


def _best_cut(cuts: np.ndarray, f1: np.ndarray) -> float:
    """Halfway between the descending `cuts[k]` of the best F1 and the next lower score.

    A cut is valid only after the last of a run of equal scores; ties go to the
    higher threshold.
    """
    valid = np.append(cuts[1:] < cuts[:-1], True)
    k = int(np.argmax(np.where(valid, f1, -1.0)))
    return float((cuts[k] + cuts[k + 1]) / 2) if k + 1 < len(cuts) else float(cuts[k])


def tune_for(scores, y_true, metric: str, always_top: bool = False, missed_per_doc=None, shrinkage=None):
    """The threshold with the best dev `metric` (`mlgen.eval.metrics.gain`, computed from one sort by
    `_gains`) when `apply`'d with `always_top`.

    micro-F1 by `tune`'s exact sweep; the others one global threshold, the best of up to
    `MAX_CUTS` cuts midway between the distinct values among each document's `CUT_POOL` best
    scores (and one above every score); macro-F1 with a `shrinkage` (not None) one threshold
    per label (`per_label`), shrunk toward that global one.

    Returns:
        A float, or a float array `(n_labels,)` for macro-F1 with a finite `shrinkage`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    missed = np.zeros(len(scores), int) if missed_per_doc is None else np.asarray(missed_per_doc)
    if metric == "micro-f1" or not scores.size:
        return tune(scores, y_true, False, always_top, int(missed.sum()))
    pool = -np.sort(-scores, axis=1)[:, :CUT_POOL].ravel()
    values = np.unique(pool)
    cuts = np.append((values[1:] + values[:-1]) / 2, np.nextafter(values[-1], np.inf))
    if len(cuts) > MAX_CUTS:
        cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, MAX_CUTS).round().astype(int))]
    cuts = np.insert(cuts, 0, values[0])  # every pooled score chosen
    overall = float(cuts[int(np.argmax(_gains(scores, y_true, cuts, metric, always_top, missed)))])  # ties: lower
    if metric != "macro-f1" or shrinkage is None or np.isinf(shrinkage):
        return overall
    return per_label(scores, y_true, overall, shrinkage, always_top, int(missed.sum()))


def _gains(scores, y_true, cuts, metric: str, always_top: bool, missed) -> np.ndarray:
    """`metric` (larger better, as `mlgen.eval.metrics.gain`) of `apply(scores, cut, always_top)` for
    every cut `(n_cuts,)`, from one sort of each document's scores (each label's, for macro-F1, which
    leaves out the labels `always_top` forces). Gold labels outside the columns (`missed`, per
    document) count as misses; they add no column to macro-F1 or Hamming loss here (as they do
    in `evaluate`), which does not move the best cut."""
    y_true = np.asarray(y_true) > 0
    if metric == "macro-f1":
        tp, predicted, gold = (np.zeros((scores.shape[1], len(cuts))) for _ in range(3))
        for j in range(scores.shape[1]):
            order = np.argsort(-scores[:, j], kind="stable")
            hits = np.concatenate([[0], np.cumsum(y_true[order, j])])
            predicted[j] = len(order) - np.searchsorted(scores[order[::-1], j], cuts, side="left")
            tp[j], gold[j] = hits[predicted[j].astype(int)], hits[-1]
        occurring = (predicted + gold) > 0
        f1 = np.where(occurring, 2 * tp / np.maximum(predicted + gold, 1), 0.0)
        return f1.sum(axis=0) / np.maximum(occurring.sum(axis=0), 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    hits = np.concatenate([np.zeros((len(scores), 1), int), np.cumsum(np.take_along_axis(y_true, order, 1), 1)], 1)
    # Labels of each document at or above each cut: its scores ascending, searched.
    predicted = np.stack([len(row) - np.searchsorted(row[::-1], cuts, side="left") for row in ranked])
    if always_top and scores.shape[1]:
        predicted = np.maximum(predicted, 1)
    tp = np.take_along_axis(hits, predicted, axis=1)  # (n_docs, n_cuts)
    gold = hits[:, -1:] + np.asarray(missed)[:, None]
    if metric == "samples-f1":
        denominator = predicted + gold
        return np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0), axis=0)
    if metric == "subset-accuracy":
        return np.mean((tp == gold) & (predicted == gold), axis=0)
    if metric == "hamming":
        return 1.0 - (predicted + gold - 2 * tp).sum(axis=0) / scores.size
    raise ValueError(f"no grid for {metric!r}")


def per_label(scores, y_true, overall: float, shrinkage: float, always_top: bool = False, missed: int = 0):
    """One threshold per label `(n_labels,)`: each label's F1-maximising cut (`tune`'s
    `per_label`) moved toward `overall` by `shrinkage` pseudo-positives: `(n * own +
    shrinkage * overall) / (n + shrinkage)` for a label with `n` dev positives (labels without
    a dev positive get `overall`)."""
    y_true = np.asarray(y_true) > 0
    own = tune(scores, y_true, True, always_top, missed)
    positives = y_true.sum(axis=0)
    if not shrinkage:
        return np.where(positives > 0, own, overall)
    return (positives * own + shrinkage * overall) / (positives + shrinkage)
