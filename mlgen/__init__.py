"""mlgen: multi-label text classification as label-sequence generation.

A CNN reads a document into a feature vector; an RNN decoder writes its label set one
label at a time (Chen et al., IJCNN 2017).

    >>> import mlgen
    >>> clf = mlgen.load("runs/reuters21578")
    >>> clf.predict(["Wheat exports rose ..."])
    [['wheat', 'grain']]

Importing mlgen does not import TensorFlow; `load`, `LabelSequenceClassifier` and
the model modules do, when first used.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import

__version__ = "0.2.0"

from mlgen import datasets  # noqa: E402
from mlgen.data import CSVFormat, LabelledData, read_labelled_csv  # noqa: E402
from mlgen.errors import InputError  # noqa: E402
from mlgen.vocab import LabelVocabulary  # noqa: E402


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
    "datasets",
    "load",
    "read_labelled_csv",
]
