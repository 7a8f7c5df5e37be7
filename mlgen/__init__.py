"""mlgen: multi-label text classification as label-sequence generation.

A CNN reads a document into a feature vector; an RNN decoder writes its label set one
label at a time (Chen et al., IJCNN 2017).

    >>> import mlgen
    >>> clf = mlgen.load("runs/reuters21578")
    >>> clf.predict(["Wheat exports rose ..."])
    [['wheat', 'grain']]

Importing mlgen changes no global state and does not import TensorFlow; `load` (of a
neural model) and the neural estimators do, when first used.
"""

from mlgen.data import CSVFormat, LabelledData, LabelVocabulary, datasets, read_labelled_csv
from mlgen.errors import InputError
from mlgen.version import __version__


def load(folder):
    """Loads a trained model from its run folder: `mlgen.load(dir).predict(texts)`."""
    from mlgen.registry import load as load_run

    return load_run(folder)


# The scikit-learn estimators, one per model type (`mlgen.estimator`), imported when first used.
ESTIMATORS = ("LabelSequenceClassifier", "CNNBinaryRelevanceClassifier", "LinearBinaryRelevanceClassifier")


def __getattr__(name):
    if name in ESTIMATORS:
        from mlgen import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'mlgen' has no attribute {name!r}")


__all__ = [
    "CNNBinaryRelevanceClassifier",
    "CSVFormat",
    "InputError",
    "LabelSequenceClassifier",
    "LabelVocabulary",
    "LabelledData",
    "LinearBinaryRelevanceClassifier",
    "__version__",
    "datasets",
    "load",
    "read_labelled_csv",
]
