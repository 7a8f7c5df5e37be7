"""Labelled CSV files larger than memory: read chunk by chunk, split by a hash of each row.

`mlgen train --stream` (on by default when the training files pass `STREAM_ABOVE_BYTES`)
trains through this module, and its rows are never all in memory:

- `read_stream` reads one or more files (a glob's matches, in name order) through
  `read_chunks`, the project's one CSV reader: the same parsing, checks, one-line
  errors (file and data row) and `--drop-invalid` counts as `read_labelled_csv`.
- `HashSplit` says which rows are dev: those whose seeded hash of the text falls below
  the dev fraction. Every pass and every worker agrees, whatever the chunking, and a
  text repeated in the data never sits on both sides.
- `scan` makes one checking pass before training (after a count of the rows, when it
  splits off dev): it counts the train side (`DataSummary`: the label vocabulary,
  `max_labels`, `sequence_length`), keeps a bounded, seeded sample of it, and gathers
  dev, which is held in memory (at most `MAX_DEV_DOCS` documents) to be scored after
  every epoch.
- Training then reads `LabelledStream.chunks` once more, to write the vectorized
  documents to TFRecord files that every epoch reads (`mlgen.nn.preprocessing.documents`).
  A file whose size, modification time or count of training documents is not what the
  scan found is an error naming it (`FileCheck`): the run would train on rows nobody
  checked, or on a count that the pipeline no longer matches.

The sample (`SAMPLE_DOCS` documents: those with the smallest values of a second
seeded hash, a uniform sample that does not depend on file order) adapts the text
vectorizer and fits the linear-br ensemble. Adapting on the whole stream would keep
a count of every distinct token, which grows without bound on large, noisy data,
while the `max_tokens` most frequent tokens of a uniform sample of this size are
nearly those of the whole; and scikit-learn's TF-IDF and linear classifiers need
their rows in memory.

numpy and pandas only.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlgen.data.reader import CSVFormat, LabelledData, concat, count_rows, read_chunks
from mlgen.data.summary import DataSummary
from mlgen.errors import InputError, bad_value, format_rows

# Training files larger than this (bytes on disk, all together) stream by default.
STREAM_ABOVE_BYTES = 256 * 2**20
# Rows read at a time.
STREAM_CHUNK = 10_000
# Training documents kept to adapt the text vectorizer and fit the linear-br ensemble.
SAMPLE_DOCS = 100_000
# The most dev documents held in memory: the dev fraction shrinks to stay under it.
MAX_DEV_DOCS = 20_000


def expand(pattern) -> list[Path]:
    """The files `pattern` names: itself, or a glob's matches (`'shards/*.csv.gz'`) in name order.

    Raises:
        InputError: when a glob matches no file.
    """
    pattern = str(pattern)
    if not glob.has_magic(pattern):
        return [Path(pattern)]
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths:
        raise InputError(f"{pattern}: no file matches; check the pattern (quote it so the shell does not expand it)")
    return paths


def total_bytes(paths: Sequence[Path]) -> int:
    """The files' sizes on disk, together (0 for a missing one: the reader names it)."""
    return sum(path.stat().st_size for path in paths if path.is_file())


def read_stream(
    paths: Sequence[Path], fmt: CSVFormat = CSVFormat(), chunksize: int = STREAM_CHUNK
) -> Iterator[LabelledData]:
    """The labelled rows of `paths`, file after file, `chunksize` rows at a time.

    Each chunk is `read_chunks`' `LabelledData` (rows numbered within its file, its
    `source` the file, drops counted in `dropped`): together the chunks are what
    `read_labelled_csv` reads from each file, in the same order.

    Raises:
        InputError: as `read_chunks` does, at the chunk where the problem is.
    """
    for path in paths:
        for _, data in read_chunks(path, fmt, chunksize=chunksize):
            yield data


@dataclasses.dataclass(frozen=True)
class HashSplit:
    """Dev is every row whose seeded hash of its text falls below `fraction`.

    Attributes:
        fraction: the share of rows that are dev, in (0, 1).
        seed: changes which rows those are (`--seed`).
    """

    fraction: float
    seed: int = 0

    def is_dev(self, texts: Sequence[str]) -> np.ndarray:
        """A bool per text: whether its row is dev."""
        return uniform_hash(texts, f"dev-{self.seed}") < self.fraction


def uniform_hash(texts: Sequence[str], salt: str) -> np.ndarray:
    """A float in [0, 1) per text, uniform and fixed by the text and `salt` alone."""
    key = hashlib.sha256(f"mlgen-{salt}".encode()).hexdigest()[:16]
    hashed = pd.util.hash_array(np.asarray(texts, dtype=object), hash_key=key, categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclasses.dataclass
class LabelledStream:
    """The training side of labelled files, read chunk by chunk on each pass (`chunks`).

    Made by `scan`; `mlgen.nn.preprocessing.documents` turns it into a `tf.data` pipeline.

    Attributes:
        paths, fmt, chunksize: what is read, how, and how many rows at a time.
        split: which rows are dev (skipped here), or None when dev is another file.
        source: the files, for messages and `config.json`.
        summary: the training documents' counts (`DataSummary`).
        sample: at most `SAMPLE_DOCS` training documents, a seeded uniform sample in file order.
        dropped: invalid rows dropped (`--drop-invalid`) per file, by reason.
        checked: what the scan found of each file, in `paths` order (`FileCheck`); `chunks`
            refuses a file that no longer matches. Empty: no check.
    """

    paths: tuple[Path, ...]
    fmt: CSVFormat
    split: HashSplit | None
    source: str
    summary: DataSummary
    sample: LabelledData
    dropped: dict[str, dict[str, list[int]]]
    chunksize: int = STREAM_CHUNK
    checked: tuple[FileCheck, ...] = ()

    def __len__(self) -> int:
        return self.summary.num_docs

    def chunks(self) -> Iterator[LabelledData]:
        """The training documents, chunk after chunk (dev rows left out).

        Raises:
            InputError: as `read_chunks` does; when a file changed since `scan` checked it
                (`FileCheck.verify`).
        """
        for index, path in enumerate(self.paths):
            check = self.checked[index] if self.checked else None
            if check is not None:
                check.verify(path)
            docs = 0
            for data in read_stream([path], self.fmt, self.chunksize):
                if self.split is not None:
                    data = data.subset(np.flatnonzero(~self.split.is_dev(data.texts)).tolist())
                docs += len(data)
                if check is not None and docs > check.train_docs:
                    check.verify(path, docs)
                if len(data):
                    yield data
            if check is not None:
                check.verify(path, docs)

    def summary_line(self) -> str:
        """One line on what was read and dropped, as `LabelledData.summary` says it."""
        line = f"{self.source}: {len(self)} training documents, streamed in chunks of {self.chunksize} rows"
        if len(self.sample) < len(self):
            line += f" (a sample of {len(self.sample)} adapts the text vocabulary)"
        parts = [
            f"{len(rows)} {reason} in {path} (data rows {format_rows(rows)})"
            for path, reasons in self.dropped.items()
            for reason, rows in reasons.items()
        ]
        if parts:
            line += f", dropped {sum(len(r) for d in self.dropped.values() for r in d.values())} invalid rows: "
            line += "; ".join(parts)
        return line


def scan(
    pattern,
    fmt: CSVFormat = CSVFormat(),
    *,
    dev_fraction: float | None = 0.1,
    seed: int = 0,
    chunksize: int = STREAM_CHUNK,
    sample_docs: int = SAMPLE_DOCS,
    max_dev_docs: int = MAX_DEV_DOCS,
) -> tuple[LabelledStream, LabelledData | None]:
    """Reads the files `pattern` names once, checking every row: the training stream and dev.

    Args:
        pattern: a file or a glob (`expand`).
        fmt: the CSV format.
        dev_fraction: the share of rows that are dev (`HashSplit`; lowered, after a
            count of the rows, so that dev holds at most about `max_dev_docs`), or None
            when dev comes from another file (every row trains).
        seed: the split's and the sample's seed.
        chunksize: rows read at a time.
        sample_docs: the size of the training sample (`LabelledStream.sample`).

    Returns:
        `(train, dev)`: the `LabelledStream` and, with `dev_fraction`, the dev documents
        in memory (rows numbered within their file; `dev.source` names the split).

    Raises:
        InputError: as `read_chunks` does, naming the file and data row; when
            `dev_fraction` is out of (0, 1), or either side ends up empty.
    """
    paths = tuple(expand(pattern))
    source = str(pattern)
    split = None
    if dev_fraction is not None:
        if not 0.0 < dev_fraction < 1.0:
            raise bad_value("dev_fraction", dev_fraction, "must be between 0 and 1 (exclusive)")
        rows = sum(count_rows(path, fmt) for path in paths)
        split = HashSplit(min(dev_fraction, max_dev_docs / max(rows, 1)), seed)
    summary, sample = DataSummary(), _Sample(sample_docs, seed)
    dev_chunks, dropped = [], {}
    checked = []
    for index, path in enumerate(paths):
        # A missing file: the reader's error names it.
        check, docs = FileCheck.of(path) if path.is_file() else FileCheck(-1, -1, 0), 0
        for _, data in read_chunks(path, fmt, chunksize=chunksize):
            for reason, rows in data.dropped.items():
                dropped.setdefault(str(path), {}).setdefault(reason, []).extend(rows)
            is_dev = split.is_dev(data.texts) if split is not None else np.zeros(len(data), bool)
            if is_dev.any():
                dev_chunks.append(data.subset(np.flatnonzero(is_dev).tolist()))
            train = data.subset(np.flatnonzero(~is_dev).tolist())
            summary.add(train.texts, train.label_sets)
            sample.add(train, index)
            docs += len(train)
        check = dataclasses.replace(check, train_docs=docs)
        check.verify(path)  # not changed while the scan read it
        checked.append(check)
    stream = LabelledStream(paths, fmt, split, source, summary, sample.data(source), dropped, chunksize, tuple(checked))
    if not len(stream):
        raise InputError(f"{source}: no training documents are left; fix the rows or read other files")
    if split is None:
        return stream, None
    # Each dev row keeps its file, so that messages name it (`LabelledData.files`).
    dev = concat(dev_chunks, f"{source} (dev: {split.fraction:.4g} of the rows by a hash of their text)")
    if not len(dev):
        raise InputError(
            f"{source}: --dev-fraction {dev_fraction} left no dev rows; give a --dev file or raise --dev-fraction"
        )
    return stream, dev


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """What `scan` found of one training file, for the passes after it to compare.

    Attributes:
        size, mtime_ns: `os.stat`'s, when the scan began reading the file.
        train_docs: the training documents the scan read from it (dev rows and drops left out).
    """

    size: int
    mtime_ns: int
    train_docs: int

    @classmethod
    def of(cls, path: Path, train_docs: int = 0) -> FileCheck:
        try:
            stat = path.stat()
        except OSError as err:
            raise InputError(f"{path}: cannot be read any more ({err.strerror}); {_LEAVE}") from None
        return cls(stat.st_size, stat.st_mtime_ns, train_docs)

    def verify(self, path: Path, train_docs: int | None = None) -> None:
        """Raises `InputError` naming `path` when it is not as the scan found it: its size or
        modification time now, or, given `train_docs` (so far), its count of training documents."""
        now = FileCheck.of(path)
        if now.size != self.size:
            change = f"{self.size:,} bytes when checked, {now.size:,} now"
        elif now.mtime_ns != self.mtime_ns:
            change = "modified after it was checked"
        elif train_docs is not None and train_docs != self.train_docs:
            more = "more than " if train_docs > self.train_docs else ""
            change = f"{self.train_docs:,} training documents when checked, {more}{train_docs:,} now"
        else:
            return
        raise InputError(f"{path}: changed since training checked it ({change}); {_LEAVE}")


_LEAVE = "training reads the files again after checking them: leave them as they are until it ends, or copy them first"


class _Sample:
    """The `size` documents with the smallest seeded hash seen so far (a bottom-k sample)."""

    def __init__(self, size: int, seed: int):
        self.size, self.salt = size, f"sample-{seed}"
        self.texts, self.label_sets = np.empty(0, object), np.empty(0, object)
        self.keys = np.empty((0, 3))  # (hash, file index, row)

    def add(self, data: LabelledData, file_index: int) -> None:
        if not len(data):
            return
        label_sets = np.empty(len(data), object)
        label_sets[:] = data.label_sets
        keys = np.column_stack([uniform_hash(data.texts, self.salt), np.full(len(data), file_index), data.rows])
        self.texts = np.concatenate([self.texts, np.asarray(data.texts, object)])
        self.label_sets = np.concatenate([self.label_sets, label_sets])
        self.keys = np.concatenate([self.keys, keys])
        if len(self.texts) > self.size:
            keep = np.sort(np.argpartition(self.keys[:, 0], self.size - 1)[: self.size])
            self.texts, self.label_sets, self.keys = self.texts[keep], self.label_sets[keep], self.keys[keep]

    def data(self, source: str) -> LabelledData:
        order = np.lexsort((self.keys[:, 2], self.keys[:, 1]))  # file order
        return LabelledData(
            texts=self.texts[order].tolist(),
            label_sets=self.label_sets[order].tolist(),
            rows=self.keys[order, 2].astype(int).tolist(),
            source=f"{source} (sample)",
        )
