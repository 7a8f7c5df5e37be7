"""A trained model, loaded from its run folder, predicting label sets from raw text."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import ModelConfig, from_dict, load_json, save_json
from mlgen.data import check_texts
from mlgen.errors import InputError
from mlgen.vocab import EOS_ID, NUM_SPECIAL, LabelVocabulary


@dataclasses.dataclass
class Prediction:
    """One document's decoded label sequence.

    Attributes:
        labels: the labels in generation order.
        scores: each label's probability at the step it was generated.
        log_prob: log-probability of the whole sequence, EOS included.
    """

    labels: list[str]
    scores: list[float]
    log_prob: float


def decode_texts(
    model, texts: Sequence[str], beam_size: int = 1, max_labels: int | None = None, batch_size: int = 256
) -> list[Prediction]:
    """Runs the model's compiled search over `texts` in batches. The one decoding path.

    Args:
        model: a `LabelSequenceModel`.
        texts: raw documents.
        beam_size: 1 for greedy search, more for beam search.
        max_labels: most labels per document (default: the model's).
        batch_size: documents per compiled call.
    """
    import tensorflow as tf

    generate = model.generate_function(beam_size, max_labels)
    predictions = []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant([str(t) for t in texts[start : start + batch_size]], dtype=tf.string)
        ids, names, probs, log_prob = (x.numpy() for x in generate(batch))
        for row_ids, row_names, row_probs, row_log_prob in zip(ids, names, probs, log_prob):
            end = int(np.argmax(row_ids == EOS_ID)) if (row_ids == EOS_ID).any() else len(row_ids)
            keep = row_ids[:end] >= NUM_SPECIAL
            predictions.append(
                Prediction(
                    labels=[name.decode("utf-8") for name in row_names[:end][keep]],
                    scores=[float(p) for p in row_probs[:end][keep]],
                    log_prob=float(row_log_prob),
                )
            )
    return predictions


class Predictor:
    """A trained CNN-RNN model with its label vocabulary and config.

    Example:
        >>> clf = mlgen.load("runs/reuters21578")
        >>> clf.predict(["Wheat exports rose ..."])
        [['grain', 'wheat']]
    """

    def __init__(self, model, vocab: LabelVocabulary, config: dict):
        self.model = model
        self.vocab = vocab
        self.config = config
        self.model_config = from_dict(ModelConfig, config.get("model", {}))
        self.metrics: dict = {}
        self.history: dict = {}

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    def predict_scores(
        self, texts: Sequence[str], beam_size: int | None = None, max_labels: int | None = None
    ) -> list[Prediction]:
        """Labels in generation order, a probability per label and the sequence log-probability.

        Args:
            texts: raw documents.
            beam_size: 1 for greedy search (default: the model's `beam_size`).
            max_labels: most labels per document (default: the model's `max_labels`).
        """
        texts = check_texts(texts)
        beam_size = self.model_config.beam_size if beam_size is None else beam_size
        if beam_size < 1:
            raise InputError(f"--beam-size must be at least 1, got {beam_size}")
        if max_labels is not None and max_labels < self.model_config.min_labels:
            raise InputError(f"--max-labels must be at least {self.model_config.min_labels}, got {max_labels}")
        return decode_texts(self.model, texts, beam_size=beam_size, max_labels=max_labels)

    def predict(
        self, texts: Sequence[str], beam_size: int | None = None, max_labels: int | None = None
    ) -> list[list[str]]:
        """The label set of each text, labels in generation order."""
        return [p.labels for p in self.predict_scores(texts, beam_size, max_labels)]

    def write(self, folder) -> None:
        """Writes the run files into an existing `folder` (see `mlgen.artifacts`)."""
        folder = Path(folder)
        self.model.save(folder / artifacts.MODEL)
        self.vocab.save(folder / artifacts.LABEL_VOCAB)
        save_json(self.config, folder / artifacts.CONFIG)
        save_json(self.metrics, folder / artifacts.METRICS)
        save_json(self.history, folder / artifacts.HISTORY)

    def save(self, folder) -> None:
        """Saves the run folder atomically: a failure leaves any previous folder intact."""
        with artifacts.atomic_dir(folder) as staging:
            self.write(staging)

    @classmethod
    def load(cls, folder) -> Predictor:
        """Restores a run folder written by `save` or `mlgen train` (Keras safe mode)."""
        import keras

        import mlgen.model  # noqa: F401  registers the custom layers

        folder = artifacts.check_run_dir(folder)
        model = keras.saving.load_model(folder / artifacts.MODEL, compile=False, safe_mode=True)
        predictor = cls(
            model, LabelVocabulary.load(folder / artifacts.LABEL_VOCAB), load_json(folder / artifacts.CONFIG)
        )
        predictor.metrics = load_json(folder / artifacts.METRICS)
        predictor.history = load_json(folder / artifacts.HISTORY)
        return predictor
