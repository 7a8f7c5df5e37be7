"""`cnn-br`: the CNN-RNN model's very encoder with one sigmoid per label, thresholded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlgen.data import LabelVocabulary
from mlgen.nn import saving
from mlgen.nn.binary_relevance import BinaryRelevanceModel
from mlgen.nn.inference import BinaryRelevanceInference
from mlgen.predictors import ensemble
from mlgen.predictors.neural import NeuralPredictor
from mlgen.predictors.scoring import ScoringPredictor


class CNNBRPredictor(ScoringPredictor, NeuralPredictor):
    """A trained `BinaryRelevanceModel`; scores are sigmoid probabilities."""

    network = BinaryRelevanceModel

    def __init__(self, model: BinaryRelevanceModel, vocab: LabelVocabulary, config: dict, threshold=0.5):
        super().__init__(vocab, config, threshold)
        self.model = model
        self.inference = BinaryRelevanceInference(model)

    def scores(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return self.inference.scores(texts, batch_size)

    def serving_scores(self):
        from mlgen.nn import serving

        return serving.network_scores(self.model), {"model": self.model}

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> CNNBRPredictor:
        predictor = cls(saving.load_network(folder, config, vocab, BinaryRelevanceModel), vocab, config)
        predictor.linear = ensemble.read(folder, vocab, config)
        return predictor
