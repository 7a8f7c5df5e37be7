"""scikit-learn estimators around the one training loop: one per model type.

| estimator | `--model` | per-label scores |
|---|---|---|
| `LabelSequenceClassifier` | cnn-rnn | `predict_proba`: each label's probability mass in the beam (see below) |
| `CNNBinaryRelevanceClassifier` | cnn-br | `predict_proba`: each label's sigmoid |
| `LinearBinaryRelevanceClassifier` | linear-br | `decision_function`: each label's margin; `predict_proba` |

Every `predict_proba` is the model's label scores through the map fitted on dev that makes them
probabilities (`mlgen.decisions.calibration`: none, temperature, sigmoid or isotonic, chosen by
the cross-fitted Brier score on dev).

Their constructor arguments are exactly the fields `mlgen train --model X` reads
(`registry.ModelType.fields`, the linear-br ensemble's included), with the configs'
defaults, plus `allow_empty_labels` and `verbose`: declared once, in `mlgen.config`.
`get_params`, `set_params`, `clone`, `cross_val_score`, `GridSearchCV` and `Pipeline`
work on lists of texts and lists of label sets, and `score` (micro-F1) is what model
selection maximises. They are not `ClassifierMixin`s: scikit-learn's classifier checks
take a list of label sets for the "legacy multi-label" format and refuse it, and plain
K-fold is the right split for label sets.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from mlgen import artifacts
from mlgen.config import SECTIONS, ModelConfig
from mlgen.data import check_texts, from_lists
from mlgen.errors import InputError
from mlgen.registry import fit, get, load

# Constructor arguments beside the hyperparameters.
EXTRA_PARAMS = {"allow_empty_labels": False, "verbose": 0}


# The state key under which a pickled fitted estimator keeps its run folder (a tar archive's bytes).
RUN_FOLDER_STATE = "_mlgen_run_folder"


def _defaults(model_type: str) -> dict:
    """`{name: default}` of every field `model_type` reads, ensemble's included, in section order."""
    fields = get(model_type).fields(artifacts.LINEAR_BR)
    defaults = {}
    for section, cls in SECTIONS.items():
        values = {f.name: f.default for f in dataclasses.fields(cls)}
        defaults.update((name, values[name]) for name in fields.get(section, ()))
    return {**defaults, **EXTRA_PARAMS}


def _explains(estimator) -> bool:
    return get(estimator.model_type).explains


class _Estimator(BaseEstimator):
    """What the three estimators share. Subclasses set `model_type`; their signature is
    made from its fields (`__init_subclass__`), and what they can do beyond `predict` (`explain`)
    from its entry in the model table (`mlgen.registry.MODEL_TYPES`)."""

    model_type: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        defaults = _defaults(cls.model_type)

        def __init__(self, **params):
            unknown = sorted(set(params) - set(defaults))
            if unknown:
                raise TypeError(f"{cls.__name__}() got unexpected keyword arguments: {', '.join(unknown)}")
            for name, default in defaults.items():
                setattr(self, name, params.get(name, default))

        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        parameters += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in defaults.items()]
        __init__.__signature__ = inspect.Signature(parameters)
        __init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__ = __init__

    def _configs(self) -> dict:
        """`{section: config}` from the parameters (the fields this type does not read keep their defaults)."""
        params = self.get_params()
        fields = get(self.model_type).fields(params.get("ensemble", ModelConfig.ensemble))
        return {
            section: cls(**{name: params[name] for name in fields.get(section, ()) if name in params})
            for section, cls in SECTIONS.items()
        }

    def fit(self, texts, label_sets, dev_texts=None, dev_label_sets=None):
        """Trains on `texts` (strings) and `label_sets` (lists of label names); returns self.

        `dev_texts` and `dev_label_sets` (together, or neither) are dev data for early
        stopping and what is tuned after training; without them `dev_fraction` of the
        training data is held out. Texts and label sets are checked by the CSV reader's
        rules (`mlgen.data.from_lists`): labels are stripped, empty texts are refused, and
        so are empty label sets unless `allow_empty_labels`.
        """
        if (dev_texts is None) != (dev_label_sets is None):
            raise InputError("fit: give dev_texts and dev_label_sets together, or neither")
        configs = self._configs()
        train = from_lists(texts, label_sets, "fit data", allow_empty_labels=self.allow_empty_labels)
        dev = None
        if dev_texts is not None:
            dev = from_lists(dev_texts, dev_label_sets, "dev data", allow_empty_labels=self.allow_empty_labels)
        self.predictor_ = fit(
            self.model_type, train, dev, configs["model"], configs["train"], configs["baseline"], verbose=self.verbose
        )
        self.classes_ = np.asarray(self.predictor_.labels, dtype=object)
        self.history_ = self.predictor_.history
        return self

    def predict(self, texts) -> list[list[str]]:
        """The label set of each text, by the rule fitted on dev."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict(texts)

    def predict_indicator(self, texts) -> np.ndarray:
        """`predict` as a 0/1 matrix `(len(texts), len(classes_))`: what
        `MultiLabelBinarizer(classes=clf.classes_).fit_transform(clf.predict(texts))` gives."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.vocab.to_multi_hot(self.predict(texts)).astype(np.int64)

    def predict_scores(self, texts):
        """Per text: its labels and their scores (`mlgen.data.Prediction`)."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_scores(texts)

    def score(self, texts, label_sets) -> float:
        """The `metric` parameter's score of `predict(texts)` against `label_sets` (micro-F1 by
        default; Hamming as 1 - the loss, so larger is better): what `GridSearchCV` and
        `cross_val_score` maximise by default. Gold labels outside `classes_` count as misses."""
        from mlgen.eval import metrics

        check_is_fitted(self, "predictor_")
        gold = from_lists(texts, label_sets, "score data", allow_empty_labels=True)
        scores = metrics.evaluate(gold.label_sets, self.predict(gold.texts), self.predictor_.labels)
        return float(metrics.gain(scores, self.predictor_.decision_metric))

    @available_if(_explains)
    def explain(self, text: str):
        """Per predicted label, the attention weights over `text`'s tokens (`attention` models; only
        the model types whose table entry `explains` have this method)."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.explain(text, beam_size=self.beam_size if get(self.model_type).searches else None)

    def save(self, folder) -> None:
        """Writes a run folder that `mlgen.load` and the CLI read."""
        check_is_fitted(self, "predictor_")
        self.predictor_.save(folder)

    def __getstate__(self):
        """The state to pickle: a fitted predictor travels as its run folder (`save`, the Keras
        model in its own format), archived as bytes, since Keras models and compiled
        functions do not pickle."""
        state = dict(super().__getstate__())  # a copy: object.__getstate__ gives the live __dict__
        predictor = state.pop("predictor_", None)
        if predictor is not None:
            with tempfile.TemporaryDirectory(prefix="mlgen-pickle-") as scratch:
                predictor.save(Path(scratch) / "run")
                buffer = io.BytesIO()
                with tarfile.open(fileobj=buffer, mode="w") as archive:
                    archive.add(Path(scratch) / "run", arcname="run")
            state[RUN_FOLDER_STATE] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        """Restores a pickled estimator: a fitted one's run folder is loaded back (`mlgen.load`)."""
        state = dict(state)
        folder = state.pop(RUN_FOLDER_STATE, None)
        super().__setstate__(state)
        if folder is not None:
            with tempfile.TemporaryDirectory(prefix="mlgen-unpickle-") as scratch:
                with tarfile.open(fileobj=io.BytesIO(folder), mode="r") as archive:
                    if hasattr(tarfile, "data_filter"):
                        archive.extractall(scratch, filter="data")
                    else:  # Python before 3.11.4: the archive is the one `__getstate__` wrote
                        archive.extractall(scratch)  # noqa: S202
                self.predictor_ = load(Path(scratch) / "run")


class LabelSequenceClassifier(_Estimator):
    """cnn-rnn: a CNN encoder and an RNN decoder that writes the label set one label at a time.

    Parameters: every field `mlgen train --model cnn-rnn` reads (see `mlgen train --help`),
    with the same defaults; `allow_empty_labels`; `verbose` (Keras verbosity in `fit`).

    Attributes:
        predictor_: the fitted `mlgen.predictors.cnn_rnn.SequencePredictor`.
        classes_: the labels, in the columns' order of `predict_proba` and `predict_indicator`.

    Example:
        >>> clf = LabelSequenceClassifier(epochs=5).fit(texts, label_sets)
        >>> clf.predict(["wheat exports rose"])
        [['wheat', 'grain']]
    """

    model_type = artifacts.CNN_RNN

    def predict_proba(self, texts) -> np.ndarray:
        """`(len(texts), len(classes_))`: each label's share of the probability mass of the
        beam's label sequences that hold it (an estimate of P(label in the set) under the
        model), mixed with the label head's and linear-br's probabilities as fitted on dev
        (`SequencePredictor.label_scores`), calibrated on dev (`Predictor.predict_proba`).
        Rows do not sum to 1: the labels are not exclusive."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_proba(texts)


class CNNBinaryRelevanceClassifier(_Estimator):
    """cnn-br: the same CNN encoder with one sigmoid per label (binary relevance).

    Parameters: every field `mlgen train --model cnn-br` reads, with the same defaults;
    `allow_empty_labels`; `verbose`. Attributes as `LabelSequenceClassifier`'s.
    """

    model_type = artifacts.CNN_BR

    def predict_proba(self, texts) -> np.ndarray:
        """`(len(texts), len(classes_))`: each label's sigmoid probability (fused with
        linear-br's margins as fitted on dev, with the ensemble), calibrated on dev
        (`Predictor.predict_proba`). Rows do not sum to 1."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_proba(texts)


class LinearBinaryRelevanceClassifier(_Estimator):
    """linear-br: TF-IDF and one linear classifier per label (binary relevance; no TensorFlow).

    Parameters: every field `mlgen train --model linear-br` reads, with the same defaults;
    `allow_empty_labels`; `verbose`. Attributes as `LabelSequenceClassifier`'s.
    """

    model_type = artifacts.LINEAR_BR

    def decision_function(self, texts) -> np.ndarray:
        """`(len(texts), len(classes_))`: each label's classifier margin (the signed distance
        to the `svc` hyperplane, or the log-odds of `logreg`); `predict` thresholds it."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.model.margins(check_texts(texts))

    def predict_proba(self, texts) -> np.ndarray:
        """`(len(texts), len(classes_))`: each label's probability, the classifier's score
        calibrated on dev (`Predictor.predict_proba`; for `svc`, its margin mapped to a
        probability). Rows do not sum to 1."""
        check_is_fitted(self, "predictor_")
        return self.predictor_.predict_proba(texts)
