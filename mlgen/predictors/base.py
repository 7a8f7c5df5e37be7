"""What every model type's predictor shares: the `Predictor` interface and reading run folders.

A predictor is a trained model with its label vocabulary and config: texts in, label
sets out. Each model type has its module here (`cnn_rnn`, `cnn_br`, `linear_br`),
holding its `Predictor` subclass, which fits, saves, loads and predicts; the table of
model types (`mlgen.registry`) names them. Nothing here imports TensorFlow: the
neural types' modules do (`neural`), linear-br's never.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mlgen import artifacts
from mlgen.config import SECTIONS, BaselineConfig, Configs, TrainConfig, from_dict, save_json
from mlgen.data import LabelledData, LabelVocabulary, Prediction, check_texts, from_outputs
from mlgen.decisions import ArrayOps, DecisionPolicy, Rule, calibration, policy
from mlgen.errors import InputError, bad_value, first_line, names_for

if TYPE_CHECKING:
    from mlgen.linear import LinearBR


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
    # The run file holding the decision policy (`mlgen.decisions.policy`).
    decision_file = artifacts.THRESHOLDS
    # What the policy file's problems begin with ("" for "has ...").
    decision_lead = ""

    def __init__(self, vocab: LabelVocabulary, config: dict):
        self.vocab = vocab
        self.config = config
        self.metrics: dict = {}
        self.history: dict = {}
        # The linear-br model beside the network (`ModelConfig.ensemble`), or None.
        self.linear = None
        # How scores become label sets (`mlgen.decisions.DecisionPolicy`), fitted by `calibrate`.
        self.decision: DecisionPolicy = self.default_decision()

    def default_decision(self) -> DecisionPolicy:
        """The decision policy before `calibrate` fits one."""
        raise NotImplementedError

    @property
    def model_type(self) -> str:
        """Its model type's name, as `config.json` holds it (`mlgen.registry.MODEL_TYPES`' key)."""
        return artifacts.model_type(self.config)

    @property
    def decision_metric(self) -> str:
        """The metric the default decision is fitted for (`TrainConfig.metric`)."""
        return from_dict(TrainConfig, self.config.get("train", {})).metric

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
        metric: str | None = None,
    ) -> list[Prediction]:
        """Per text: its labels (most confident or first generated first) and their scores.

        Args:
            texts: raw documents.
            beam_size: the search's beam (cnn-rnn only; default: the rule's).
            max_labels: most labels per document (default: the model's).
            decision: the name of a rule of `decision` (default: its default rule).
            metric: decide by the rule fitted on dev for this metric (`mlgen.config.DECISION_METRICS`;
                default: the one the model was trained for, `TrainConfig.metric`).
        """
        return self.predict_ranked(texts, beam_size, max_labels, decision, ranking=False, metric=metric)[0]

    def predict_ranked(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
        ranking: bool = True,
        metric: str | None = None,
    ) -> tuple[list[Prediction], np.ndarray | None]:
        """`predict_scores` and, with `ranking`, `label_scores` `(len(texts), num_labels)` (else
        None), from one run of the prediction function (one search feeds both)."""
        texts = check_texts(texts)
        rule = self.rule(decision, beam_size, metric)
        max_labels = self.check_max_labels(max_labels)
        ranked_by = self.ranking_rule(rule) if ranking else None
        if not texts:
            return [], (np.zeros((0, self.vocab.num_labels), np.float32) if ranking else None)
        outputs = self.outputs(texts, rule, ranked_by, max_labels)
        return from_outputs(outputs, self.labels), outputs.get("label_scores")

    def label_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every label's score per text, `(len(texts), num_labels)`, columns in `labels`
        order; larger means more likely: the scores of the rule that ranks labels
        (`ranking_rule`: binary relevance's thresholded scores, cnn-rnn's marginal rule)."""
        texts = check_texts(texts)
        rule = self.ranking_rule(self.decision.default)
        if not texts:
            return np.zeros((0, self.vocab.num_labels), np.float32)
        return self.outputs(texts, rule, rule, None)["label_scores"]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Every label's probability per text, `(len(texts), num_labels)`, columns in `labels`
        order: `label_scores` through the calibration fitted on dev (`mlgen.decisions.calibration`),
        from the same run of the prediction function. Rows do not sum to 1: labels are not exclusive.

        Raises:
            InputError: for a model whose scores are margins and that has no calibration (a run
                folder written before mlgen fitted one).
        """
        texts = check_texts(texts)
        fitted, rule = self.decision.calibration, self.ranking_rule(self.decision.default)
        if fitted is None and self._margins(rule):
            raise InputError(
                f"this {self.model_type} model scores labels by margins and has no calibration fitted on dev "
                "(it was trained before mlgen fitted one): retrain it for probabilities"
            )
        if not texts:
            return np.zeros((0, self.vocab.num_labels), np.float32)
        outputs = self.outputs(texts, rule, rule, None, fitted)
        return outputs["probabilities"] if fitted is not None else outputs["label_scores"]

    def probabilities(
        self, texts: Sequence[str], label_scores: np.ndarray, rule: Rule, max_labels: int | None = None
    ) -> np.ndarray | None:
        """What `predict_proba(texts)` gives, for scoring it beside `predict_ranked(texts, ...)`:
        from that call's `label_scores` (deciding by `rule`, with `max_labels`) in NumPy when they are
        the scores the calibration was fitted on (no second pass), else by `predict_proba`; None for
        a model that has no probabilities (margins without a calibration)."""
        fitted, ranking = self.decision.calibration, self.ranking_rule(self.decision.default)
        if fitted is None and self._margins(ranking):
            return None
        if max_labels is not None or self.ranking_rule(rule).scoring() != ranking.scoring():
            return self.predict_proba(texts)
        if fitted is None:
            return np.asarray(label_scores)
        return fitted.apply(ArrayOps, np.asarray(label_scores, np.float64)).astype(np.float32)

    @property
    def score_range(self) -> tuple[float, float] | None:
        """The range of the network's scores (`(0, 1)` for probabilities), or None for any finite
        number (margins)."""
        return (0.0, 1.0)

    def _margins(self, rule: Rule) -> bool:
        """Whether `rule`'s scores are margins rather than probabilities."""
        return not rule.gives_probabilities(self.score_range is None)

    def fit_calibration(self, dev: LabelledData) -> None:
        """Fits on dev the map from the default rule's label scores to the probabilities
        `predict_proba` gives (`mlgen.decisions.calibration.fit`: none, temperature, sigmoid or
        isotonic, chosen by the cross-fitted Brier score) and keeps it in the decision policy.
        Training calls it last. (`calibrate` fits the decision rules.)"""
        known = self.vocab.drop_unknown(dev.label_sets)
        margins = self._margins(self.ranking_rule(self.decision.default))
        fitted = calibration.fit(self.label_scores(dev.texts), self.vocab.to_multi_hot(known), margins)
        self.decision = dataclasses.replace(self.decision, calibration=fitted)

    def predict(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
        metric: str | None = None,
    ) -> list[list[str]]:
        """The label set of each text (`predict_scores`' arguments)."""
        return [p.labels for p in self.predict_scores(texts, beam_size, max_labels, decision, metric)]

    def rule(self, decision: str | None = None, beam_size: int | None = None, metric: str | None = None) -> Rule:
        """The rule fitted for `metric`, or the one `decision` names, in the fitted policy (None:
        its default), with `beam_size` (a user's) applied; an InputError for a name or size this
        model does not take."""
        if (beam_size is not None or decision is not None) and self.entry is not None:
            self.entry.check_decoding(beam_size, decision)
            if not self.entry.searches:
                decision = None  # the table let only its one rule's name pass
        return self.decision.rule(decision, metric)

    def ranking_rule(self, rule: Rule) -> Rule:
        """The rule whose scores rank the labels while predicting with `rule`: `rule` itself by default."""
        return rule

    def check_max_labels(self, max_labels) -> int | None:
        """`max_labels` (a user's, None for the model's), checked: from 1 to the number of labels."""
        why = f" (this model has {self.vocab.num_labels} labels)"
        return check_count(max_labels, "max_labels", 1, self.vocab.num_labels, why)

    def outputs(
        self, texts: list[str], rule: Rule, ranking: Rule | None, max_labels: int | None, calibration=None
    ) -> dict:
        """`rule`'s outputs dict (`mlgen.decisions.rules`) for `texts`, with `label_scores` by
        `ranking`'s scores unless None, and with a `calibration` (`mlgen.decisions.calibration`)
        their `probabilities`, as NumPy arrays."""
        raise NotImplementedError

    def serving(self, beam_size: int | None = None, decision: str | None = None, metric: str | None = None):
        """The model as a `mlgen.nn.serving.Serving` module: raw strings in, what `predict_scores`
        gives out (and `predict_proba`'s probabilities, with a calibration), by the very function
        `predict_scores` runs (`mlgen export` saves it)."""
        from mlgen.nn import serving  # TensorFlow's SavedModel: only to export

        ranking = self.ranking_rule(self.decision.default)
        rule = self.rule(decision, beam_size, metric)
        return serving.module(self.graph, rule, self.labels, ranking, self.decision.calibration)

    @property
    def decision_rule(self) -> str:
        """The name of the rule that turns scores into label sets by default."""
        return self.decision.default.name

    @property
    def ensemble_weights(self) -> dict | None:
        """The default rule's weights of the linear-br ensemble (`linear_weight`: on its margins
        added to the logits; `linear_mix`: its sigmoid's share of the label scores), or None
        without one."""
        if self.linear is None:
            return None
        rule = self.decision.default
        return {"linear_weight": rule.linear_weight, "linear_mix": getattr(rule, "linear_mix", 0.0)}

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
        policy.save(self.decision, folder / self.decision_file)
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
        predictor.decision = predictor.read_decision(folder)
        predictor.metrics = artifacts.read_json(folder, artifacts.METRICS, required=False) or {}
        predictor.history = artifacts.read_json(folder, artifacts.HISTORY, required=False) or {}
        return predictor

    def read_decision(self, folder: Path) -> DecisionPolicy:
        """The decision policy of a run folder (`decision_file`), checked."""
        data = artifacts.read_json(folder, self.decision_file)
        return policy.read(
            folder, self.decision_file, data, self.decision_limits(), self.legacy_decision, self.decision_lead
        )

    def decision_limits(self) -> dict:
        """The bounds a decision file's fields may name (`mlgen.decisions.policy.read`)."""
        return {
            "num_labels": self.vocab.num_labels,
            "has_linear": self.linear is not None,
            "margins": self.score_range is None,
        }

    def legacy_decision(self, data: dict, damaged) -> dict:
        """A format 1 decision file (mlgen 0.2, 0.3) as format 2; `damaged(problem)` raises."""
        raise NotImplementedError

    def _write_model(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> Predictor:
        raise NotImplementedError


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
