"""The linear-br ensemble (`ModelConfig.ensemble`): a linear-br model fitted beside a network.

After the network trains, `fit` fits TF-IDF + one linear classifier per label on the
same training data, with the network's label columns; the predictors then weigh it on
dev (`SequencePredictor.fit_decision`, `ScoringPredictor.calibrate`) among the grids
below, zero included (zero and zero: the network alone).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit

from mlgen import artifacts
from mlgen.config import Configs
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.linear import LinearBR
from mlgen.predictors.base import read_linear

# The weights of linear-br's margins added to the network's label logits, and the shares of
# its sigmoid mixed into the label scores, that are tried besides 0.
LINEAR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LINEAR_MIXES = (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8)
# The largest weight on the margins a run folder may hold (the fit tries at most 16; far larger
# ones swamp the network's logits and overflow float32 into NaN scores).
MAX_LINEAR_WEIGHT = 1000.0


def fit(train: LabelledData, vocab: LabelVocabulary, configs: Configs) -> LinearBR | None:
    """The linear-br model beside a network trained on `train` with `vocab`'s label columns,
    or None when `configs.model.ensemble` is `"none"`."""
    if configs.model.ensemble != artifacts.LINEAR_BR:
        return None
    return LinearBR.fit(train.texts, vocab.to_multi_hot(train.label_sets), configs.baseline, configs.train.seed)


def read(folder: Path, vocab: LabelVocabulary, config: dict) -> LinearBR | None:
    """The ensemble of a run folder trained with `ensemble="linear-br"` (its `linear.npz`), or
    None (folders whose config has no ensemble, as those written before it existed)."""
    if config.get("model", {}).get("ensemble") != artifacts.LINEAR_BR:
        return None
    return read_linear(folder, config, vocab.num_labels)


def mixed_scores(marginals, head, margins, head_weight: float, linear_mix: float) -> np.ndarray:
    """`(1 - head_weight - linear_mix) * marginals + head_weight * head + linear_mix *
    sigmoid(margins)`, all `(n_docs, num_labels)` (see `SequencePredictor.fit_decision`)."""
    scores = (1.0 - head_weight - linear_mix) * marginals
    if head_weight:
        scores = scores + head_weight * head
    if linear_mix:
        scores = scores + linear_mix * expit(margins)
    return scores


def fused_scores(probabilities, margins, weight: float, mix: float) -> np.ndarray:
    """`(1 - mix) * sigmoid(logit(probabilities) + weight * margins) + mix * sigmoid(margins)`,
    all `(n_docs, num_labels)` (see `ScoringPredictor`)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return (1.0 - mix) * expit(np.log(p) - np.log1p(-p) + weight * margins) + mix * expit(margins)


def serving_margins(linear: LinearBR | None, used: bool = True):
    """`linear`'s margins as TensorFlow ops (`mlgen.nn.serving.LinearMargins`), or None
    without an ensemble or when `used` is False (its fitted weights are zero)."""
    if linear is None or not used:
        return None
    from mlgen.nn.serving import LinearMargins  # TensorFlow: only to export

    vectorizer = linear.vectorizer
    return LinearMargins(
        vectorizer.get_feature_names_out(),
        vectorizer.idf_,
        linear.coef,
        linear.intercept,
        linear.config.ngram_max,
        linear.config.sublinear_tf,
    )
