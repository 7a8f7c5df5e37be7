"""`cnn-br`: the CNN-RNN model's very encoder with one sigmoid per label, thresholded."""

from __future__ import annotations

from pathlib import Path

from mlgen.data import LabelVocabulary
from mlgen.decisions import ArrayOps
from mlgen.nn import saving
from mlgen.nn.binary_relevance import BinaryRelevanceModel
from mlgen.predictors import ensemble
from mlgen.predictors.neural import NeuralPredictor
from mlgen.predictors.scoring import ScoringPredictor


class CNNBRPredictor(ScoringPredictor, NeuralPredictor):
    """A trained `BinaryRelevanceModel`; scores are sigmoid probabilities."""

    network = BinaryRelevanceModel

    def __init__(self, model: BinaryRelevanceModel, vocab: LabelVocabulary, config: dict, threshold=0.5):
        self.model = model
        super().__init__(vocab, config, threshold)

    def dev_ops(self, texts) -> ArrayOps:
        wanted = ("network", "margins") if self.linear is not None else ("network",)
        return ArrayOps(**self.graph.parts(texts, wanted))

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> CNNBRPredictor:
        predictor = cls(saving.load_network(folder, config, vocab, BinaryRelevanceModel), vocab, config)
        predictor.linear = ensemble.read(folder, vocab, config)
        return predictor
