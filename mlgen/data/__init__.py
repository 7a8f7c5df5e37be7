"""What goes in and comes out: labelled CSV files, the bundled datasets, the label
vocabulary, word vectors and predictions. numpy and pandas only: no TensorFlow here.
"""

from mlgen.data import datasets, stream
from mlgen.data.predictions import Explanation, Prediction, from_outputs
from mlgen.data.reader import (
    CSVFormat,
    LabelledData,
    check_texts,
    concat,
    from_lists,
    is_utf8,
    read_chunks,
    read_labelled_csv,
    read_texts,
    train_dev_split,
)
from mlgen.data.vocab import LabelVocabulary

__all__ = [
    "CSVFormat",
    "Explanation",
    "LabelVocabulary",
    "LabelledData",
    "Prediction",
    "from_outputs",
    "check_texts",
    "concat",
    "datasets",
    "from_lists",
    "is_utf8",
    "read_chunks",
    "read_labelled_csv",
    "read_texts",
    "stream",
    "train_dev_split",
]
