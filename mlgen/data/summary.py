"""What training must know of its data before a network is built, gathered chunk by chunk.

`DataSummary` counts the documents per label (the label vocabulary), the largest label
set (`max_labels`), whether every document has a label (`min_labels`) and the
documents' word counts (`sequence_length`). It is built the same way from data in
memory (`DataSummary.of`) and from a stream (`mlgen.data.stream.scan`, one `add` per
chunk), so both paths resolve the same hyperparameters from the same rows.
numpy only.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

# Word counts above this are counted as this (only the quantiles below it are ever used).
WORD_COUNT_CAP = 4096


@dataclasses.dataclass
class DataSummary:
    """Counts over labelled documents.

    Attributes:
        num_docs: documents added.
        label_counts: documents per label, in the order labels were first seen.
        longest: the largest label set.
        all_labelled: whether every document has at least one label.
        word_counts: `word_counts[k]` documents have `k` whitespace-separated words
            (`WORD_COUNT_CAP` or more counted at `WORD_COUNT_CAP`).
    """

    num_docs: int = 0
    label_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    longest: int = 0
    all_labelled: bool = True
    word_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(WORD_COUNT_CAP + 1, np.int64))

    @classmethod
    def of(cls, data) -> DataSummary:
        """The summary of `data` (`LabelledData`) in one go."""
        summary = cls()
        summary.add(data.texts, data.label_sets)
        return summary

    def add(self, texts, label_sets) -> None:
        """Counts one more chunk of documents."""
        self.num_docs += len(texts)
        self.label_counts.update(label for labels in label_sets for label in set(labels))
        self.longest = max(self.longest, max((len(set(s)) for s in label_sets), default=0))
        self.all_labelled = self.all_labelled and all(label_sets)
        words = np.fromiter((len(str(t).split()) for t in texts), dtype=np.int64, count=len(texts))
        self.word_counts += np.bincount(np.minimum(words, WORD_COUNT_CAP), minlength=WORD_COUNT_CAP + 1)

    def word_count_quantile(self, quantile: float) -> float:
        """`numpy.quantile` of the documents' word counts (exact below `WORD_COUNT_CAP`)."""
        if not self.num_docs:
            raise ValueError("no documents")
        values = np.repeat(np.arange(WORD_COUNT_CAP + 1, dtype=np.uint16), self.word_counts)
        return float(np.quantile(values, quantile))
