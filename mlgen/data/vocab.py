"""The label vocabulary: label names <-> ids, and the order labels are generated in.

Ids: PAD=0, BOS=1, EOS=2, then the labels from 3 on, most frequent first (ties by
name). A label set becomes the target sequence `BOS l1 l2 ... EOS`, its labels sorted
by `order`:

- `frequency`: most frequent first, ties by name (the paper's choice; this class's default);
- `rare-first`: least frequent first, ties by name (`mlgen train`'s default, chosen on dev; experiments/README.md);
- `alphabetical`: by name;
- `given`: as listed in the CSV.

numpy only.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mlgen.errors import InputError, format_rows

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
NUM_SPECIAL = 3
ORDERS = ("frequency", "rare-first", "alphabetical", "given")


class LabelVocabulary:
    """Maps label names to ids and label sets to target sequences.

    Args:
        labels: the label names in id order (ids 3, 4, ...).
        counts: training documents per label, same order (for `frequency` orders).
        order: the order of labels inside a target sequence, one of `ORDERS`.

    Example:
        >>> vocab = LabelVocabulary.build([["acq"], ["earn", "acq"]])
        >>> vocab.labels
        ['acq', 'earn']
        >>> vocab.encode(["earn", "acq"])
        [1, 3, 4, 2]
        >>> vocab.to_labels([3, 4, 2, 0])
        ['acq', 'earn']
    """

    def __init__(self, labels: Sequence[str], counts: Sequence[int] | None = None, order: str = "frequency"):
        if order not in ORDERS:
            raise InputError(f"unknown label order {order!r}; choose one of: {', '.join(ORDERS)}")
        labels = [str(label) for label in labels]
        if not labels:
            raise InputError("the label vocabulary is empty: the training data has no labels")
        if len(set(labels)) != len(labels):
            duplicates = sorted(label for label, n in collections.Counter(labels).items() if n > 1)
            raise InputError(f"duplicate labels in the vocabulary: {', '.join(duplicates)}")
        reserved = sorted({PAD, BOS, EOS} & set(labels))
        if reserved:
            raise InputError(f"label names {', '.join(reserved)} are reserved for the decoder; rename those labels")
        self.labels = labels
        self.counts = [int(c) for c in counts] if counts is not None else [0] * len(labels)
        self.order = order
        self._ids = {label: i + NUM_SPECIAL for i, label in enumerate(labels)}
        if order == "frequency":
            ranked = sorted(labels, key=lambda label: (-self.counts[self._ids[label] - NUM_SPECIAL], label))
        elif order == "rare-first":
            ranked = sorted(labels, key=lambda label: (self.counts[self._ids[label] - NUM_SPECIAL], label))
        else:
            ranked = sorted(labels)
        self._rank = {label: r for r, label in enumerate(ranked)}

    @classmethod
    def build(cls, label_sets: Iterable[Sequence[str]], order: str = "frequency") -> LabelVocabulary:
        """The vocabulary of every label in `label_sets`, most frequent first (ties by name)."""
        return cls.from_counts(collections.Counter(label for labels in label_sets for label in set(labels)), order)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], order: str = "frequency") -> LabelVocabulary:
        """The vocabulary of the labels counted in `counts` (documents per label), most frequent first."""
        labels = sorted(counts, key=lambda label: (-counts[label], label))
        return cls(labels, [counts[label] for label in labels], order=order)

    @property
    def num_labels(self) -> int:
        """Number of real labels (no PAD/BOS/EOS)."""
        return len(self.labels)

    @property
    def size(self) -> int:
        """Number of ids, specials included: the width of the decoder's logits."""
        return len(self.labels) + NUM_SPECIAL

    @property
    def tokens(self) -> list[str]:
        """Every token in id order: PAD, BOS, EOS, then the labels."""
        return [PAD, BOS, EOS, *self.labels]

    def __len__(self) -> int:
        return self.num_labels

    def __contains__(self, label: str) -> bool:
        return label in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelVocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"LabelVocabulary({self.num_labels} labels, order={self.order!r})"

    def id(self, label: str) -> int:
        """The id of one label. Raises InputError for a label outside the vocabulary."""
        try:
            return self._ids[label]
        except KeyError:
            raise InputError(f"label {label!r} is not in the label vocabulary") from None

    def sort(self, label_set: Sequence[str]) -> list[str]:
        """`label_set` in generation order (duplicates collapsed)."""
        unique = list(dict.fromkeys(label_set))
        if self.order == "given":
            return unique
        return sorted(unique, key=self._rank.__getitem__)

    def encode(self, label_set: Sequence[str]) -> list[int]:
        """`["earn", "acq"]` -> `[BOS_ID, id(acq), id(earn), EOS_ID]` (generation order)."""
        return [BOS_ID, *(self.id(label) for label in self.sort(label_set)), EOS_ID]

    def label_ids(
        self, label_sets: Sequence[Sequence[str]], width: int | None = None, rows: Sequence[int] | None = None
    ) -> np.ndarray:
        """Each label set's ids in generation order, PAD after: int32 `(n, width)`.

        Args:
            label_sets: `n` label sets; every label must be in the vocabulary.
            width: columns, at least the largest set (default: exactly that).
            rows: data rows of the sets, for error messages.

        Raises:
            InputError: naming the data rows of labels outside the vocabulary.
        """
        unknown = self.unknown_rows(label_sets, rows)
        if unknown:
            label, bad_rows = next(iter(unknown.items()))
            raise InputError(
                f"label {label!r} (data rows {format_rows(bad_rows)}) is not in the label vocabulary "
                f"built from the training data ({len(unknown)} unknown labels in all)"
            )
        longest = max((len(set(s)) for s in label_sets), default=0)
        width = longest if width is None else width
        if width < longest:
            raise InputError(f"width {width} is too narrow for a set of {longest} labels")
        ids = np.full((len(label_sets), width), PAD_ID, dtype=np.int32)
        for i, label_set in enumerate(label_sets):
            encoded = self.encode(label_set)[1:-1]
            ids[i, : len(encoded)] = encoded
        return ids

    def to_labels(self, ids: Iterable[int]) -> list[str]:
        """Ids -> label names in generation order: stops at EOS, skips PAD/BOS and repeats.

        The one way ids become names (`mlgen.nn.inference` calls it per document).
        """
        labels = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= NUM_SPECIAL:
                label = self.labels[i - NUM_SPECIAL]
                if label not in labels:
                    labels.append(label)
        return labels

    def to_multi_hot(self, label_sets: Sequence[Sequence[str]]) -> np.ndarray:
        """`(n, num_labels)` int8 indicator matrix, columns in `labels` order.

        Raises:
            InputError: for a label outside the vocabulary.
        """
        matrix = np.zeros((len(label_sets), self.num_labels), dtype=np.int8)
        for i, label_set in enumerate(label_sets):
            for label in label_set:
                matrix[i, self.id(label) - NUM_SPECIAL] = 1
        return matrix

    def from_multi_hot(self, matrix: np.ndarray) -> list[list[str]]:
        """The inverse of `to_multi_hot`; each set in generation order."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[1] != self.num_labels:
            raise InputError(f"expected a multi-hot matrix of width {self.num_labels}, got shape {matrix.shape}")
        return [self.sort([self.labels[j] for j in np.flatnonzero(row)]) for row in matrix]

    def unknown_rows(
        self, label_sets: Sequence[Sequence[str]], rows: Sequence[int] | None = None
    ) -> dict[str, list[int]]:
        """Labels outside the vocabulary -> the data rows they occur in (1-based if `rows` is None)."""
        rows = range(1, len(label_sets) + 1) if rows is None else rows
        unknown: dict[str, list[int]] = {}
        for row, label_set in zip(rows, label_sets):
            for label in label_set:
                if label not in self._ids:
                    unknown.setdefault(label, []).append(row)
        return unknown

    def unknown_report(self, data) -> str | None:
        """One line on the labels of `data` (LabelledData) outside the vocabulary, or None if there are none.

        Such labels are not dropped from scoring: they count as misses.
        """
        unknown: dict[str, list[int]] = {}  # label -> the documents it is in
        for i, label_set in enumerate(data.label_sets):
            for label in label_set:
                if label not in self._ids:
                    unknown.setdefault(label, []).append(i)
        if not unknown:
            return None
        # `locate` names the file of each row too when the data joins several files.
        listed = "; ".join(f"{label!r} ({data.locate(docs, 3)})" for label, docs in list(unknown.items())[:5])
        return (
            f"{data.source}: {sum(map(len, unknown.values()))} gold labels ({len(unknown)} distinct) are not in "
            f"the model's labels and count as misses: {listed}"
        )

    def drop_unknown(self, label_sets: Sequence[Sequence[str]]) -> list[list[str]]:
        """The label sets without labels outside the vocabulary (count them first with `unknown_rows`)."""
        return [[label for label in s if label in self._ids] for s in label_sets]

    def to_dict(self) -> dict:
        return {"labels": self.labels, "counts": self.counts, "order": self.order}

    @classmethod
    def from_dict(cls, data: dict) -> LabelVocabulary:
        """The inverse of `to_dict`. Raises InputError unless `data` holds a list of label
        names, optionally one count per label and an order."""
        labels, counts = data.get("labels"), data.get("counts")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise InputError("'labels' must be a list of label names")
        if counts is not None and (
            not isinstance(counts, list)
            or len(counts) != len(labels)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        ):
            raise InputError(f"'counts' must be a list of {len(labels)} whole numbers, one per label")
        return cls(labels, counts, order=data.get("order", "frequency"))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path) -> LabelVocabulary:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
