"""mlgen: multi-label text classification as label-sequence generation.

A CNN reads a document into a feature vector; an RNN decoder writes its label set one
label at a time (Chen et al., IJCNN 2017).

    >>> import mlgen
    >>> clf = mlgen.load("runs/reuters21578")
    >>> clf.predict(["Wheat exports rose ..."])
    [['wheat', 'grain']]

Importing mlgen changes no global state and does not import TensorFlow; `load` (of a
neural model) and `LabelSequenceClassifier` do, when first used.
"""

from mlgen.data import CSVFormat, LabelledData, LabelVocabulary, datasets, read_labelled_csv
from mlgen.errors import InputError
from mlgen.version import __version__


def load(folder):
    """Loads a trained model from its run folder: `mlgen.load(dir).predict(texts)`."""
    from mlgen.registry import load as load_run

    return load_run(folder)


def __getattr__(name):
    if name == "LabelSequenceClassifier":
        from mlgen.estimator import LabelSequenceClassifier

        return LabelSequenceClassifier
    raise AttributeError(f"module 'mlgen' has no attribute {name!r}")


__all__ = [
    "CSVFormat",
    "InputError",
    "LabelSequenceClassifier",
    "LabelVocabulary",
    "LabelledData",
    "__version__",
    "datasets",
    "load",
    "read_labelled_csv",
]
