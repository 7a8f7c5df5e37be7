"""TF-IDF features and one linear classifier per label (scikit-learn only).

`LinearBR` is the fitted model as plain arrays: it trains with scikit-learn, computes
its margins in numpy, and saves and loads as one `.npz`, so a reloaded model scores
exactly what the trained one did. `mlgen.predictors.linear_br` makes it a model type
(`--model linear-br`); the neural types use it as their linear-br ensemble.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from mlgen.config import BaselineConfig
from mlgen.errors import first_line

# The arrays of a saved model.
ARRAYS = ("terms", "idf", "coef", "intercept")


class LinearBR:
    """TF-IDF + one linear classifier per label, as arrays.

    Args:
        terms: the TF-IDF vocabulary in column order `(n_features,)`.
        idf: inverse document frequencies `(n_features,)`.
        coef: `(num_labels, n_features)` float32 weights.
        intercept: `(num_labels,)` float32 biases.
        config: the features' settings (`ngram_max`, `sublinear_tf`) and the classifier.
    """

    def __init__(self, terms, idf, coef, intercept, config: BaselineConfig):
        self.config = config
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.vectorizer = _vectorizer(config, vocabulary=[str(t) for t in terms])
        self.vectorizer.idf_ = np.asarray(idf, dtype=np.float64)

    @classmethod
    def fit(cls, texts: Sequence[str], y: np.ndarray, config: BaselineConfig, seed: int) -> LinearBR:
        """Fits TF-IDF on `texts` and one classifier per column of the 0/1 `y` `(n_docs, num_labels)`."""
        vectorizer = _vectorizer(config)
        features = vectorizer.fit_transform(texts)  # (n_docs, n_features)
        # bool, not int8: scikit-learn's LabelBinarizer (inside OneVsRestClassifier)
        # scrambles int8 indicator matrices of more than 127 columns (sklearn 1.9.1).
        classifier = OneVsRestClassifier(_classifier(config, seed)).fit(features, np.asarray(y).astype(bool))
        coef = np.zeros((y.shape[1], features.shape[1]), np.float32)
        intercept = np.zeros(y.shape[1], np.float32)
        for j, estimator in enumerate(classifier.estimators_):
            if hasattr(estimator, "coef_"):
                coef[j], intercept[j] = estimator.coef_.ravel(), estimator.intercept_[0]
            else:  # a label on every training document: always yes
                intercept[j] = 30.0
        return cls(vectorizer.get_feature_names_out(), vectorizer.idf_, coef, intercept, config)

    @property
    def num_labels(self) -> int:
        return len(self.intercept)

    @property
    def n_features(self) -> int:
        return self.coef.shape[1]

    def margins(self, texts: Sequence[str]) -> np.ndarray:
        """Each classifier's decision function `(len(texts), num_labels)` float32: the SVM
        margin, or the logistic regression's log-odds."""
        if not len(texts):
            return np.zeros((0, self.num_labels), np.float32)
        features = self.vectorizer.transform(list(texts)).astype(np.float32)  # (n_docs, n_features) sparse
        return np.asarray(features @ self.coef.T) + self.intercept  # (n_docs, num_labels)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """`margins` for `classifier="svc"`, probabilities for `"logreg"`: `(len(texts), num_labels)`."""
        margins = self.margins(texts)
        if self.config.classifier == "logreg":
            return 1.0 / (1.0 + np.exp(-margins))
        return margins

    def save(self, path) -> None:
        np.savez_compressed(
            path,
            terms=np.asarray(self.vectorizer.get_feature_names_out(), dtype=str),
            idf=self.vectorizer.idf_,
            coef=self.coef,
            intercept=self.intercept,
        )

    @classmethod
    def load(cls, path, num_labels: int, config: BaselineConfig) -> LinearBR:
        """Reads what `save` wrote for `num_labels` labels.

        Raises:
            ValueError: saying what is wrong with the file (the caller names it).
        """
        try:
            with np.load(path, allow_pickle=False) as arrays:
                terms, idf, coef, intercept = (arrays[key] for key in ARRAYS)
        except KeyError as err:
            raise ValueError(f"lacks the array {err}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(f"is damaged ({first_line(err)})") from None
        shapes = {"idf": idf.shape, "coef": coef.shape, "intercept": intercept.shape}
        expected = {"idf": terms.shape, "coef": (num_labels, *terms.shape), "intercept": (num_labels,)}
        if terms.ndim != 1 or shapes != expected:
            raise ValueError(f"has arrays of shapes {shapes} for {num_labels} labels and {terms.shape} terms")
        return cls(terms, idf, coef, intercept, config)


def _vectorizer(config: BaselineConfig, vocabulary=None) -> TfidfVectorizer:
    return TfidfVectorizer(
        sublinear_tf=config.sublinear_tf,
        ngram_range=(1, config.ngram_max),
        min_df=config.min_df if vocabulary is None else 1,
        vocabulary=vocabulary,
    )


def _classifier(config: BaselineConfig, seed: int):
    if config.classifier == "logreg":
        return LogisticRegression(C=config.C, solver="liblinear", random_state=seed)
    return LinearSVC(C=config.C, random_state=seed)
