"""What a prediction is: `Prediction` per document, `Explanation` for attention models.

Every model type returns these; `from_outputs` builds them from a decision's outputs.
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


def from_outputs(outputs: dict, labels) -> list[Prediction]:
    """`Prediction`s of a decision's outputs (`mlgen.decisions.rules`): per document, the first
    `num_labels` of `label_ids` as names, their `scores`, and `log_prob` (None where NaN)."""
    ids, scores = np.asarray(outputs["label_ids"]), np.asarray(outputs["scores"])
    counts, log_probs = np.asarray(outputs["num_labels"]).tolist(), np.asarray(outputs["log_prob"]).tolist()
    return [
        Prediction(
            labels=[labels[j] for j in row_ids[:n].tolist()],
            scores=row_scores[:n].tolist(),
            log_prob=None if np.isnan(log_prob) else log_prob,
        )
        for row_ids, row_scores, n, log_prob in zip(ids, scores, counts, log_probs)
    ]
