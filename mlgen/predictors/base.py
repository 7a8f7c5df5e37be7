"""What every model type's predictor shares: the `Predictor` interface and reading run folders.

A predictor is a trained model with its label vocabulary and config: texts in, label
sets out. Each model type has its module here (`cnn_rnn`, `cnn_br`, `linear_br`),
holding its `Predictor` subclass, which fits, saves, loads and predicts; the table of
model types (`mlgen.registry`) names them. Nothing here imports TensorFlow: the
neural types' modules do (`neural`), linear-br's never.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlgen import artifacts
from mlgen.config import SECTIONS, BaselineConfig, Configs, from_dict, save_json
from mlgen.data import LabelledData, LabelVocabulary, Prediction
from mlgen.errors import InputError, as_json, bad_value, first_line, names_for

if TYPE_CHECKING:
    from mlgen.linear import LinearBR

# The dev scores kept of each candidate a calibration compares (`dev_scores` in
# decision.json and thresholds.json).
DEV_SCORES = ("micro_f1", "macro_f1", "subset_accuracy", "micro_precision", "micro_recall")


class Predictor:
    """A trained model with its label vocabulary and config: texts in, label sets out.

    The common interface of every model type (`cnn-rnn`, `cnn-br`, `linear-br`);
    `mlgen.load` returns the right subclass for a run folder.

    Attributes:
        vocab: the `LabelVocabulary` (fixes the label columns).
        config: everything in `config.json` (`model_type` first).
        metrics, history: dev scores and timings; per-epoch logs.
        entry: its model type's `mlgen.registry.ModelType` (its name and what it supports),
            handed over by `mlgen.registry.fit` and `load`, the only ways a predictor is made.
    """

    entry = None
    # Whether training calls `calibrate` after every epoch (cheap) or only at the end.
    calibrate_each_epoch = True

    def __init__(self, vocab: LabelVocabulary, config: dict):
        self.vocab = vocab
        self.config = config
        self.metrics: dict = {}
        self.history: dict = {}
        # The linear-br model beside the network (`ModelConfig.ensemble`), or None.
        self.linear = None

    @property
    def model_type(self) -> str:
        """Its model type's name, as `config.json` holds it (`mlgen.registry.MODEL_TYPES`' key)."""
        return artifacts.model_type(self.config)

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[Prediction]:
        """Per text: its labels (most confident or first generated first) and their scores."""
        raise NotImplementedError

    def label_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every label's score per text, `(len(texts), num_labels)`, columns in `labels`
        order; larger means more likely (each type says what the number is)."""
        raise NotImplementedError

    def serving(self, beam_size: int | None = None, decision: str | None = None):
        """The model as a `mlgen.nn.serving.Serving` module: raw strings in, what `predict_scores`
        gives out, computed in TensorFlow (`mlgen export` saves it as a SavedModel)."""
        raise NotImplementedError

    def predict(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[list[str]]:
        """The label set of each text."""
        return [p.labels for p in self.predict_scores(texts, beam_size, max_labels, decision)]

    @property
    def decision_rule(self) -> str:
        """What turns scores into label sets by default (reported by `evaluate` and `compare`)."""
        return "threshold"

    @property
    def ensemble_weights(self) -> dict | None:
        """The fitted weights of the linear-br ensemble (`linear_weight`: on its margins
        added to the logits; `linear_mix`: its sigmoid's share of the label scores), or
        None without one."""
        return None

    def calibrate(self, dev: LabelledData) -> None:
        """Fits what is tuned on dev data after (or during) training; nothing by default."""

    @classmethod
    def check_sizes(cls, model_config, vocab: LabelVocabulary) -> None:
        """An InputError for a size in `model_config` that makes no sense for `vocab`'s labels
        (checked once the training data is read, before training); none by default."""

    @classmethod
    def fit(
        cls,
        train: LabelledData,
        dev: LabelledData,
        configs: Configs,
        config: dict,
        *,
        log_dir=None,
        verbose=0,
    ) -> Predictor:
        """Trains this model type; `mlgen.registry.fit` is the caller, and what every type shares
        (the dev split, `config`, the dev scores and timings) is done there.

        Args:
            train, dev: training and dev data (dev is never None here).
            configs: the hyperparameters; a type reads the fields its registry entry names.
            config: the run's `config.json`, with the sections this type reads; the
                predictor keeps it (a type may resolve values in it, e.g. `sequence_length`).
            log_dir: where TensorBoard logs go (none when None).
            verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).

        Returns:
            The fitted predictor, calibrated on dev, its `metrics` holding what this
            type measured (epochs, fit seconds, ...).
        """
        raise NotImplementedError

    def write(self, folder) -> None:
        """Writes the run files into an existing `folder` (see `mlgen.artifacts`)."""
        folder = Path(folder)
        self._write_model(folder)
        if self.linear is not None:
            self.linear.save(folder / artifacts.LINEAR)
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
        """Restores a run folder of this model type written by `save` or `mlgen train`.

        Raises:
            InputError: naming the folder and the file at fault when the folder is
                incomplete or damaged.
        """
        folder = artifacts.check_run_dir(folder)
        config = read_config(folder)
        predictor = cls._read_model(folder, read_vocabulary(folder), config)
        predictor.metrics = artifacts.read_json(folder, artifacts.METRICS, required=False) or {}
        predictor.history = artifacts.read_json(folder, artifacts.HISTORY, required=False) or {}
        return predictor

    def _write_model(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> Predictor:
        raise NotImplementedError


def dev_truth(vocab: LabelVocabulary, dev: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    """Dev gold as a multi-hot `(n_docs, num_labels)` and, per document `(n_docs,)`, its
    gold labels outside the vocabulary (misses no decision can avoid), for tuning thresholds."""
    known = vocab.drop_unknown(dev.label_sets)
    missed = np.array([len(set(s)) - len(set(k)) for s, k in zip(dev.label_sets, known)], dtype=int)
    return vocab.to_multi_hot(known), missed


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def is_weight(value, most: float = np.inf) -> bool:
    return is_number(value) and 0 <= value <= most


def check_count(value, name: str, minimum: int, maximum: int | None = None, why: str = "") -> int | None:
    """`value` as an int (None stays None), or an InputError unless a whole number from `minimum`
    to `maximum` (`why` says where the maximum comes from). `name` is the Python parameter
    (`"beam_size"`); messages name it as the user's door does (`mlgen.config.option`)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise bad_value(name, value, "must be a whole number")
    if value < minimum:
        raise bad_value(name, value, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise bad_value(name, value, f"must be at most {maximum}{why}")
    return int(value)


def version_tuple(version) -> tuple[int, ...] | None:
    """`"0.3.0"` -> `(0, 3, 0)`: the leading whole numbers of a version string; None if it has none."""
    if not isinstance(version, str):
        return None
    parts = []
    for part in version.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        parts.append(int(digits))
        if digits != part:
            break
    return tuple(parts) or None


def check_fitted_number(
    folder,
    name: str,
    key: str,
    value,
    low=None,
    high=None,
    integer: bool = False,
    slack: float = 0.0,
    lead: str = "",
):
    """`value`, the number under `key` in a run folder's fitted file `name`, as a float (an int
    with `integer`); an InputError naming the folder, file and key unless it is a finite number
    of that type from `low` to `high` (`high + slack` allowed: float rounding of scores up to
    `high`). `lead` begins the problem ("is not a decision rule mlgen wrote")."""
    ok = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    ok = ok and not isinstance(value, bool) and bool(np.isfinite(value))
    if ok and low is not None and value < low:
        ok = False
    if ok and high is not None and value > high + slack:
        ok = False
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        if low is not None and high is not None:
            kind += f" from {low:g} to {high:g}"
        elif low is not None:
            kind += f" of at least {low:g}"
        shown = as_json(value)
        problem = f'"{key}": {shown}, not {kind}'
        raise artifacts.damaged(folder, name, f"{lead} ({problem})" if lead else f"has {problem}")
    return int(value) if integer else float(value)


def check_dev_scores(folder, name: str, value, lead: str = "") -> dict:
    """The `dev_scores` of a fitted file (reported, never used to predict), checked: candidates to
    scores from 0 to 1."""
    if not isinstance(value, dict):
        raise artifacts.damaged(folder, name, f'has a {type(value).__name__} under "dev_scores", not an object')
    for family, scores in value.items():
        if not isinstance(scores, dict):
            raise artifacts.damaged(folder, name, f'has a {type(scores).__name__} under "dev_scores.{family}"')
        for key, score in scores.items():
            check_fitted_number(folder, name, f"dev_scores.{family}.{key}", score, 0, 1, lead=lead)
    return value


def read_config(folder: Path) -> dict:
    """`config.json` of a run folder, checked: every section an object whose values
    make valid configs.

    Raises:
        InputError: naming the folder and `config.json` when it is not.
    """
    config = artifacts.read_json(folder, artifacts.CONFIG)
    if not isinstance(artifacts.model_type(config), str):
        raise artifacts.damaged(folder, artifacts.CONFIG, f"has model_type {config['model_type']!r}, not a name")
    for key, cls in {**SECTIONS, "data": None}.items():
        section = config.get(key, {})
        if not isinstance(section, dict):
            raise artifacts.damaged(folder, artifacts.CONFIG, f"has a {type(section).__name__} under {key!r}")
        try:
            if cls is not None:
                with names_for("file"):
                    from_dict(cls, section)
        except InputError as err:
            raise artifacts.damaged(folder, artifacts.CONFIG, f"has a bad {key!r} value ({err})") from None
    return config


def read_vocabulary(folder: Path) -> LabelVocabulary:
    """`label_vocab.json` of a run folder, or an InputError naming it."""
    data = artifacts.read_json(folder, artifacts.LABEL_VOCAB)
    try:
        return LabelVocabulary.from_dict(data)
    except (InputError, KeyError, TypeError) as err:
        raise artifacts.damaged(
            folder, artifacts.LABEL_VOCAB, f"is not a label vocabulary ({first_line(err)})"
        ) from None


def read_linear(folder: Path, config: dict, num_labels: int) -> LinearBR:
    """`linear.npz` of a run folder (linear-br's model, or a network's linear-br ensemble),
    or an InputError naming it."""
    from mlgen.linear import LinearBR  # scikit-learn: imported to load a model, not for `mlgen --help`

    path = artifacts.model_file(folder, artifacts.LINEAR, config)
    try:
        return LinearBR.load(path, num_labels, from_dict(BaselineConfig, config.get("baseline", {})))
    except ValueError as err:
        raise artifacts.damaged(folder, artifacts.LINEAR, str(err)) from None
