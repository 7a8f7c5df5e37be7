"""Multi-label metrics on label-set lists, computed with scikit-learn.

The columns are the label vocabulary's labels plus any gold or predicted label
outside it: such a label is never dropped, it counts as an error (a miss or a false
alarm) and is reported under `unknown_gold_labels` / `unknown_predicted_labels`.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    "n_docs",
)


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
    """Micro/macro/samples F1, Hamming loss, subset accuracy, micro P/R.

    Args:
        gold: the true label set of each document.
        pred: the predicted label set of each document.
        labels: the label vocabulary (fixes the columns).

    Returns:
        A dict with `SCORE_KEYS` plus `unknown_gold_labels` and
        `unknown_predicted_labels` (label occurrences outside `labels`).
    """
    y_true, y_pred, columns = binarize(gold, pred, labels)
    known = set(labels)
    averages = {}
    for average in ("micro", "macro", "samples"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        averages[average] = (float(p), float(r), float(f))
    return {
        "micro_f1": averages["micro"][2],
        "macro_f1": averages["macro"][2],
        "samples_f1": averages["samples"][2],
        "hamming_loss": float(skm.hamming_loss(y_true, y_pred)) if len(columns) else 0.0,
        "subset_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "micro_precision": averages["micro"][0],
        "micro_recall": averages["micro"][1],
        "n_docs": len(gold),
        "unknown_gold_labels": int(sum(label not in known for s in gold for label in s)),
        "unknown_predicted_labels": int(sum(label not in known for s in pred for label in s)),
    }


def format_scores(scores: dict) -> str:
    """The scores as aligned `name  value` lines."""
    lines = []
    for key in SCORE_KEYS:
        value = scores[key]
        lines.append(f"{key:<17}{value:.4f}" if isinstance(value, float) else f"{key:<17}{value}")
    for key in ("unknown_gold_labels", "unknown_predicted_labels"):
        if scores.get(key):
            lines.append(f"{key:<17}{scores[key]}")
    return "\n".join(lines)
