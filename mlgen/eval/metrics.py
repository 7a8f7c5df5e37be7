"""Multi-label metrics on label-set lists, computed with scikit-learn.

The columns are the label vocabulary's labels plus any gold or predicted label
outside it: such a label is never dropped, it counts as an error (a miss or a false
alarm) and is reported under `unknown_gold_labels` / `unknown_predicted_labels`.

Macro averages run over the labels that occur in the gold or the predicted sets of
the data scored, as scikit-learn's do on a `MultiLabelBinarizer` fitted to that data:
a vocabulary label absent from both (no support, never predicted) has no F1 to
average, so perfect predictions score 1 whatever the vocabulary holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn import metrics as skm
from sklearn.preprocessing import MultiLabelBinarizer

# The keys of `evaluate`'s scores, in the order reports print them.
SCORE_KEYS = (
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "hamming_loss",
    "subset_accuracy",
    "micro_precision",
    "micro_recall",
    "macro_precision",
    "macro_recall",
    "samples_precision",
    "samples_recall",
    "micro_jaccard",
    "macro_jaccard",
    "samples_jaccard",
    "n_docs",
)
# The score of `evaluate` each decision metric (`mlgen.config.DECISION_METRICS`) is, and whether smaller is better.
METRIC_SCORES = {
    "micro-f1": "micro_f1",
    "macro-f1": "macro_f1",
    "samples-f1": "samples_f1",
    "subset-accuracy": "subset_accuracy",
    "hamming": "hamming_loss",
}
LOWER_IS_BETTER = ("hamming",)
# The keys of `ranking`'s scores (LibMultiLabel's and fastText's names).
RANKING_KEYS = ("P@1", "P@3", "P@5", "nDCG@3", "nDCG@5")
# The columns of `per_label`.
PER_LABEL_COLUMNS = ("label", "support", "predicted", "precision", "recall", "f1")


def binarize(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str]):
    """Indicator matrices `(n_docs, n_columns)` for gold and predicted sets, and the columns.

    Columns: `labels` in order, then labels outside it (sorted).
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold label sets but {len(pred)} predicted ones")
    known = set(labels)
    extra = sorted({label for s in [*gold, *pred] for label in s} - known)
    columns = [*labels, *extra]
    binarizer = MultiLabelBinarizer(classes=columns)
    return binarizer.fit_transform(gold), binarizer.transform(pred), columns


def evaluate(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str]) -> dict:
    """Micro/macro/samples F1, precision, recall and Jaccard; Hamming loss; subset accuracy.

    Args:
        gold: the true label set of each document.
        pred: the predicted label set of each document.
        labels: the label vocabulary (fixes the columns; macro averages skip those
            absent from both `gold` and `pred`).

    Returns:
        A dict with `SCORE_KEYS` plus `unknown_gold_labels` and
        `unknown_predicted_labels` (label occurrences outside `labels`).
    """
    y_true, y_pred, columns = binarize(gold, pred, labels)
    occurring = np.flatnonzero(y_true.any(axis=0) | y_pred.any(axis=0))  # the columns macro averages run over
    # Sparse: scikit-learn's checks of a dense indicator matrix (np.unique over every cell) took 97% of the
    # time (1.35 s a call for 1,540 documents over 736 labels; 0.08 s sparse, the same scores).
    as_read = sparse.csr_matrix if len(columns) >= 2 else np.asarray  # one column reads as a binary target
    hamming = float(skm.hamming_loss(as_read(y_true), as_read(y_pred))) if len(columns) else 0.0
    y_true, y_pred = sparse.csr_matrix(_multilabel(y_true)), sparse.csr_matrix(_multilabel(y_pred))
    known = set(labels)
    scores = {}
    for average in ("micro", "macro", "samples"):
        which = dict(labels=occurring) if average == "macro" else {}
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0, **which)
        scores[f"{average}_precision"], scores[f"{average}_recall"], scores[f"{average}_f1"] = map(float, (p, r, f))
        scores[f"{average}_jaccard"] = float(
            skm.jaccard_score(y_true, y_pred, average=average, zero_division=0, **which)
        )
    scores["hamming_loss"] = hamming
    scores["subset_accuracy"] = float(skm.accuracy_score(y_true, y_pred))
    scores["n_docs"] = len(gold)
    scores["unknown_gold_labels"] = int(sum(label not in known for s in gold for label in s))
    scores["unknown_predicted_labels"] = int(sum(label not in known for s in pred for label in s))
    return {key: scores[key] for key in (*SCORE_KEYS, "unknown_gold_labels", "unknown_predicted_labels")}


def gain(scores: dict, metric: str) -> float:
    """`metric`'s score among `evaluate`'s `scores`, larger better (Hamming: 1 - the loss)."""
    value = scores[METRIC_SCORES[metric]]
    return 1.0 - value if metric in LOWER_IS_BETTER else value


# Equal-width bins of [0, 1] `calibration` sorts the scores into.
CALIBRATION_BINS = 15


def calibration(gold: Sequence[Sequence[str]], scores: np.ndarray, labels: Sequence[str], bins: int = CALIBRATION_BINS):
    """How well `scores` read as probabilities: every (document, label) pair is one prediction.

    Args:
        gold: the true label set of each document.
        scores: `(n_docs, len(labels))` in [0, 1] (a model's `predict_proba` or `label_scores`), or None.
        labels: the columns of `scores` (gold labels outside them are left out: no score).

    Returns:
        `(ece, table)`: the expected calibration error, `Σ_b (n_b / n) |frequency_b -
        confidence_b|` over `bins` equal-width bins, and per bin (those with a pair) its
        `confidence` (mean score), `frequency` (share of pairs that are gold) and `pairs`; None
        and an empty table for None or when a score lies outside [0, 1] (SVM margins are not probabilities).
    """
    columns = ("confidence", "frequency", "pairs")
    if scores is None:
        return None, pd.DataFrame(columns=columns)
    scores = np.asarray(scores, np.float64)
    if not scores.size or scores.min() < 0 or scores.max() > 1:
        return None, pd.DataFrame(columns=columns)
    index = {label: j for j, label in enumerate(labels)}
    truth = np.zeros(scores.shape, bool)
    for i, labels_of in enumerate(gold):
        truth[i, [index[label] for label in labels_of if label in index]] = True
    which = np.minimum((scores * bins).astype(int), bins - 1).ravel()
    pairs = np.bincount(which, minlength=bins)
    confidence = np.bincount(which, scores.ravel(), bins) / np.maximum(pairs, 1)
    frequency = np.bincount(which, truth.ravel(), bins) / np.maximum(pairs, 1)
    ece = float(np.sum(pairs * np.abs(frequency - confidence)) / scores.size)
    table = pd.DataFrame({"confidence": confidence, "frequency": frequency, "pairs": pairs})
    return ece, table[table["pairs"] > 0].reset_index(drop=True)


def ranking(gold: Sequence[Sequence[str]], scores: np.ndarray, labels: Sequence[str]) -> dict:
    """Precision at 1, 3, 5 and nDCG at 3, 5 of each document's labels ranked by `scores`.

    Args:
        gold: the true label set of each document.
        scores: `(n_docs, len(labels))`, larger meaning more likely (a model's `label_scores`).
        labels: the columns of `scores`.

    P@k is the share of gold labels among the k best-scored (ties: the earlier column
    first); nDCG@k is scikit-learn's `ndcg_score` (ties averaged). A gold label outside
    `labels` cannot be ranked: it is never among the k best, but counts in the ideal
    ranking. Documents with no gold label score 0. Averaged over documents.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(gold), len(labels)):
        raise ValueError(f"scores of shape {scores.shape}, expected ({len(gold)}, {len(labels)})")
    y_true, _, columns = binarize(gold, [[] for _ in gold], labels)
    # Gold labels outside `labels` get a score below every other: ranked last, never in the top k.
    low = (scores.min() if scores.size else 0.0) - 1.0
    scores = np.hstack([scores, np.full((len(gold), len(columns) - len(labels)), low)])
    if y_true.shape[1] < 2:  # scikit-learn's nDCG wants two columns: one never gold, ranked last
        y_true = _multilabel(y_true)
        scores = np.hstack([scores, np.full((len(gold), y_true.shape[1] - scores.shape[1]), low)])
    top = np.argsort(-scores, axis=1, kind="stable")
    result = {}
    for k in (1, 3, 5):
        hits = np.take_along_axis(y_true, top[:, :k], axis=1).sum(axis=1)
        result[f"P@{k}"] = float(np.mean(hits / k)) if len(gold) else 0.0
    for k in (3, 5):
        result[f"nDCG@{k}"] = float(skm.ndcg_score(y_true, scores, k=k)) if len(gold) > 1 else _ndcg1(y_true, top, k)
    return result


def _ndcg1(y_true: np.ndarray, top: np.ndarray, k: int) -> float:
    """nDCG@k of one document (scikit-learn's `ndcg_score` wants two), or 0 for none."""
    if not len(y_true) or not y_true[0].any():
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = y_true[0][top[0, :k]]
    ideal = discounts[: min(k, int(y_true[0].sum()))].sum()
    return float((gains * discounts[: len(gains)]).sum() / ideal)


def per_label(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str]):
    """One row per label: gold `support`, `predicted` count, precision, recall, F1.

    Rows follow `labels` (the vocabulary order, most frequent first by default), then
    labels outside it. Returns a pandas DataFrame with `PER_LABEL_COLUMNS`.
    """
    y_true, y_pred, columns = binarize(gold, pred, labels)
    p, r, f, support = skm.precision_recall_fscore_support(
        _multilabel(y_true), _multilabel(y_pred), average=None, zero_division=0
    )
    n = len(columns)
    p, r, f, support = p[:n], r[:n], f[:n], support[:n]
    return pd.DataFrame(
        {
            "label": columns,
            "support": support.astype(int),
            "predicted": y_pred.sum(axis=0).astype(int),
            "precision": p,
            "recall": r,
            "f1": f,
        },
        columns=list(PER_LABEL_COLUMNS),
    )


def _multilabel(y: np.ndarray) -> np.ndarray:
    """`y` with an all-zero column added when it has fewer than two: scikit-learn reads a
    one-column indicator matrix as a binary target and refuses sample-wise averages. The
    column is never gold nor predicted, so it changes no score (Hamming loss aside, which
    `evaluate` computes without it); macro averages skip it as they skip every absent label."""
    return y if y.shape[1] >= 2 else np.hstack([y, np.zeros((len(y), 2 - y.shape[1]), dtype=y.dtype)])


def format_scores(scores: dict) -> str:
    """The scores as aligned `name  value` lines."""
    extra = ("unknown_gold_labels", "unknown_predicted_labels", "decision_metric", "decision")
    shown = (*RANKING_KEYS, "ece", "ece_scores")
    keys = [*SCORE_KEYS, *(k for k in shown if scores.get(k) is not None), *(k for k in extra if scores.get(k))]
    width = max(map(len, keys)) + 2
    lines = []
    for key in keys:
        value = scores[key]
        lines.append(f"{key:<{width}}{value:.4f}" if isinstance(value, float) else f"{key:<{width}}{value}")
    return "\n".join(lines)
