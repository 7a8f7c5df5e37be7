"""The linear-br ensemble (`ModelConfig.ensemble`): a linear-br model fitted beside a network.

After the network trains, `fit` fits TF-IDF + one linear classifier per label on the
same training data, with the network's label columns; the decision fit then weighs it on
dev (`mlgen.decisions.fit`), zero included (the network alone). At predict time it runs as
TensorFlow ops inside the prediction function (`mlgen.nn.tfidf`).
"""

from __future__ import annotations

from pathlib import Path

from mlgen import artifacts
from mlgen.config import Configs
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.linear import LinearBR
from mlgen.predictors.base import read_linear


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
