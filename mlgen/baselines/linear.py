"""linear-br: TF-IDF features and one linear classifier per label (scikit-learn).

This module never imports TensorFlow: training, saving, loading and predicting a
linear-br model stay in numpy and scikit-learn.
"""

from __future__ import annotations

import sys
import time
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from mlgen import __version__, artifacts, metrics
from mlgen.config import BaselineConfig, TrainConfig, from_dict, to_dict
from mlgen.data import LabelledData, train_dev_split
from mlgen.errors import first_line
from mlgen.predict import ScoringPredictor, model_file
from mlgen.vocab import LabelVocabulary

MODEL_TYPE = "linear-br"


class LinearBRPredictor(ScoringPredictor):
    """TF-IDF + one linear classifier per label.

    Scores are SVM margins (`classifier="svc"`) or logistic-regression probabilities
    (`"logreg"`), computed in float32 from the saved arrays, so a reloaded model
    predicts exactly what the trained one did.

    Args:
        terms: the TF-IDF vocabulary in column order `(n_features,)`.
        idf: inverse document frequencies `(n_features,)`.
        coef: `(num_labels, n_features)` float32 weights.
        intercept: `(num_labels,)` float32 biases.
    """

    model_type = MODEL_TYPE

    def __init__(self, terms, idf, coef, intercept, vocab: LabelVocabulary, config: dict, threshold=0.0):
        super().__init__(vocab, config, threshold)
        self.baseline_config = from_dict(BaselineConfig, config.get("baseline", {}))
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.vectorizer = _vectorizer(self.baseline_config, vocabulary=[str(t) for t in terms])
        self.vectorizer.idf_ = np.asarray(idf, dtype=np.float64)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        margins = self.margins(texts)
        if self.baseline_config.classifier == "logreg":
            return 1.0 / (1.0 + np.exp(-margins))
        return margins

    def margins(self, texts: Sequence[str]) -> np.ndarray:
        """Each classifier's decision function `(len(texts), num_labels)` float32: the SVM
        margin, or the logistic regression's log-odds."""
        if not len(texts):
            return np.zeros((0, self.vocab.num_labels), np.float32)
        features = self.vectorizer.transform(list(texts)).astype(np.float32)  # (n_docs, n_features) sparse
        return np.asarray(features @ self.coef.T) + self.intercept  # (n_docs, num_labels)

    def _write_model(self, folder: Path) -> None:
        np.savez_compressed(
            folder / artifacts.LINEAR,
            terms=np.asarray(self.vectorizer.get_feature_names_out(), dtype=str),
            idf=self.vectorizer.idf_,
            coef=self.coef,
            intercept=self.intercept,
        )

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> LinearBRPredictor:
        path = model_file(folder, artifacts.LINEAR, config)
        try:
            with np.load(path, allow_pickle=False) as arrays:
                terms, idf, coef, intercept = (arrays[key] for key in ("terms", "idf", "coef", "intercept"))
        except KeyError as err:
            raise artifacts.damaged(folder, artifacts.LINEAR, f"lacks the array {err}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise artifacts.damaged(folder, artifacts.LINEAR, f"is damaged ({first_line(err)})") from None
        shapes = {"idf": idf.shape, "coef": coef.shape, "intercept": intercept.shape}
        expected = {"idf": terms.shape, "coef": (vocab.num_labels, *terms.shape), "intercept": (vocab.num_labels,)}
        if terms.ndim != 1 or shapes != expected:
            raise artifacts.damaged(
                folder,
                artifacts.LINEAR,
                f"has arrays of shapes {shapes} for {vocab.num_labels} labels and {terms.shape} terms",
            )
        return cls(terms, idf, coef, intercept, vocab, config)


def fit(
    train: LabelledData,
    dev: LabelledData | None = None,
    baseline_config: BaselineConfig = BaselineConfig(),
    train_config: TrainConfig = TrainConfig(),
    *,
    vocab: LabelVocabulary | None = None,
    verbose=1,
) -> LinearBRPredictor:
    """Fits TF-IDF and one classifier per label on `train`, then the threshold on `dev`.

    Args:
        train: training texts and label sets (they alone build both vocabularies).
        dev: data for the threshold; when None, `train_config.dev_fraction` of
            `train` is split off with `train_config.seed`.
        baseline_config: features, classifier and decision rule.
        train_config: only `seed` and `dev_fraction` apply.
        vocab: the label columns (default: built from `train`); a network's, for the
            linear-br ensemble beside it (`ModelConfig.ensemble`).
        verbose: print a summary line to stderr when true.
    """
    started = time.perf_counter()
    if dev is None:
        train, dev = train_dev_split(train, train_config.dev_fraction, train_config.seed)
    vocab = LabelVocabulary.build(train.label_sets) if vocab is None else vocab
    # bool, not the vocabulary's int8: scikit-learn's LabelBinarizer (inside OneVsRestClassifier)
    # scrambles int8 indicator matrices of more than 127 columns (sklearn 1.9.1).
    y_train = vocab.to_multi_hot(train.label_sets).astype(bool)  # (n_docs, num_labels)
    vectorizer = _vectorizer(baseline_config)
    features = vectorizer.fit_transform(train.texts)  # (n_docs, n_features)
    classifier = OneVsRestClassifier(_classifier(baseline_config, train_config.seed)).fit(features, y_train)
    coef = np.zeros((vocab.num_labels, features.shape[1]), np.float32)
    intercept = np.zeros(vocab.num_labels, np.float32)
    for j, estimator in enumerate(classifier.estimators_):
        if hasattr(estimator, "coef_"):
            coef[j], intercept[j] = estimator.coef_.ravel(), estimator.intercept_[0]
        else:  # a label on every training document: always yes
            intercept[j] = 30.0
    fit_seconds = time.perf_counter() - started

    config = {
        "mlgen_version": __version__,
        "model_type": MODEL_TYPE,
        "baseline": to_dict(baseline_config),
        "train": {"seed": train_config.seed, "dev_fraction": train_config.dev_fraction},
        "data": {"train": train.source, "dev": dev.source, "train_docs": len(train), "dev_docs": len(dev)},
    }
    predictor = LinearBRPredictor(vectorizer.get_feature_names_out(), vectorizer.idf_, coef, intercept, vocab, config)
    predictor.calibrate(dev)
    dev_scores = metrics.evaluate(dev.label_sets, predictor.predict(dev.texts), vocab.labels)
    predictor.metrics = {
        "dev": dev_scores,
        "n_features": int(features.shape[1]),
        "fit_seconds": round(fit_seconds, 2),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if verbose:
        print(
            f"linear-br: {features.shape[1]} TF-IDF features, {vocab.num_labels} labels; "
            f"dev micro-F1 {dev_scores['micro_f1']:.4f}",
            file=sys.stderr,
        )
    return predictor


def _vectorizer(config: BaselineConfig, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(
        sublinear_tf=config.sublinear_tf,
        ngram_range=(1, config.ngram_max),
        min_df=config.min_df if vocabulary is None else 1,
        vocabulary=vocabulary,
    )


def _classifier(config: BaselineConfig, seed: int):
    if config.classifier == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=config.C, solver="liblinear", random_state=seed)
    return LinearSVC(C=config.C, random_state=seed)
