"""What a prediction is: `Prediction` per document, `Explanation` for attention models.

Every model type returns these; `scored_predictions` builds them from a score matrix
and the labels chosen in it (binary relevance, and cnn-rnn's marginal rule).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Prediction:
    """One document's predicted labels.

    Attributes:
        labels: the labels, in generation order for cnn-rnn's most probable sequence,
            else highest score first.
        scores: each label's score: for cnn-rnn its probability at the step it was
            generated (the `"mode"` decision) or its label score (`"marginal"`), for
            binary relevance its probability or margin.
        log_prob: log-probability of the whole sequence, EOS included (None for the
            marginal decision and for binary-relevance models, which score labels
            independently).
    """

    labels: list[str]
    scores: list[float]
    log_prob: float | None


@dataclasses.dataclass
class Explanation:
    """Where the decoder looked for each label it generated (`--attention` models).

    Attributes:
        tokens: the document's tokens as the model sees them (standardized, cut to
            `sequence_length`; `[UNK]` outside the text vocabulary).
        labels: the predicted labels, in generation order.
        weights: `(len(labels), len(tokens))`: row `i` is the attention paid to the
            window starting at each token when label `i` was chosen; each row sums to 1.
    """

    tokens: list[str]
    labels: list[str]
    weights: np.ndarray


def scored_predictions(labels, scores: np.ndarray, chosen: np.ndarray, max_labels=None, min_labels: int = 0):
    """`Prediction`s of labels chosen from per-label scores, highest score first.

    Args:
        labels: the label names, one per column.
        scores: `(n_docs, num_labels)`; chosen: bool, the same shape.
        max_labels: keep at most this many per document (None: all chosen).
        min_labels: add the best unchosen labels up to this many.
    """
    predictions = []
    for row_scores, row_chosen in zip(scores, chosen):
        columns = np.flatnonzero(row_chosen)
        columns = columns[np.argsort(-row_scores[columns], kind="stable")]
        if len(columns) < min_labels:
            rest = np.flatnonzero(~row_chosen)
            rest = rest[np.argsort(-row_scores[rest], kind="stable")][: min_labels - len(columns)]
            columns = np.concatenate([columns, rest])
        columns = columns[:max_labels]
        predictions.append(
            Prediction(
                labels=[labels[j] for j in columns], scores=[float(row_scores[j]) for j in columns], log_prob=None
            )
        )
    return predictions
