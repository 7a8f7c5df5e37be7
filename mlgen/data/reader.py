"""Labelled files in, texts and label sets out. pandas only: no TensorFlow here.

A labelled CSV or TSV file has a text column and either one labels column whose cell
joins the labels with a separator (``earn|acq``) or one 0/1 column per label (one-hot);
a JSON Lines file (`.jsonl`, `.ndjson`) holds one object per line, its text a string and
its labels a list. Each may be compressed (`.gz`, `.bz2`, `.xz`, `.zip`).

Every problem raises `mlgen.errors.InputError` naming the file, the problem, the first
offending data rows and the fix. Data row N is the Nth record after the header: the
line number under the header unless a quoted cell spans lines. Rows are never dropped
silently: `drop_invalid=True` drops invalid ones, empty rows (blank lines) always, and
`LabelledData.dropped` counts each, for the caller to print (`LabelledData.summary()`).

This module is the project's one reader of labelled files: training, evaluation and
prediction all read through `read_chunks`.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import gzip
import io
import json
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mlgen.errors import InputError, bad_value, first_line, format_rows, option

# Why a row may be invalid, in the order they are checked and reported.
EMPTY_ROW = "empty row"  # a blank line, or every field empty: dropped (and counted) even without drop_invalid
EMPTY_TEXT = "empty text"
EMPTY_LABELS = "empty labels"
BAD_ONE_HOT = "one-hot cell not 0/1"


@dataclasses.dataclass(frozen=True)
class CSVFormat:
    """How to read a labelled CSV. Field names match the CLI flags (`--text-column` ...).

    Args:
        text_column: column holding the document text.
        labels_column: column holding the labels joined by `label_sep`.
        label_sep: separator between labels inside `labels_column`.
        label_columns: one-hot label columns (cells 0/1); when set, `labels_column`
            is not used and the labels are these column names.
        encoding: text encoding of the file.
        allow_empty_labels: accept rows with no label (otherwise an error).
        drop_invalid: drop invalid rows (counted in `LabelledData.dropped`) instead
            of raising.
    """

    text_column: str = "text"
    labels_column: str = "labels"
    label_sep: str = "|"
    label_columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    allow_empty_labels: bool = False
    drop_invalid: bool = False

    def __post_init__(self):
        for name in ("text_column", "labels_column", "label_sep", "encoding"):
            if not isinstance(getattr(self, name), str):
                raise bad_value(name, getattr(self, name), "must be a string")
        for name in ("allow_empty_labels", "drop_invalid"):
            if not isinstance(getattr(self, name), bool):
                raise bad_value(name, getattr(self, name), "must be true or false")
        if self.label_columns is not None:
            columns = self.label_columns
            if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
                raise bad_value("label_columns", self.label_columns, "must be a list of column names")
            object.__setattr__(self, "label_columns", tuple(self.label_columns))
            if not self.label_columns:
                raise InputError(
                    f"{option('label_columns')} is empty; list the one-hot columns, "
                    f"e.g. {option('label_columns', ('a', 'b', 'c'))}"
                )
        if not self.label_sep:
            raise InputError(
                f"{option('label_sep')} is empty; give the character that joins labels, e.g. {option('label_sep', '|')}"
            )

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if self.label_columns is not None:
            data["label_columns"] = list(self.label_columns)
        return data


@dataclasses.dataclass
class LabelledData:
    """Texts and their label sets, in file order.

    Attributes:
        texts: one string per document.
        label_sets: one list of label names per document (no duplicates, file order);
            empty lists only for unlabelled reads or with `allow_empty_labels`.
        rows: the data row (1-based, header not counted) each document came from.
        source: where the data came from (a path, a glob or `dataset:split`).
        dropped: invalid rows that were dropped, by reason (`"<reason> in <file>"` when
            the data joins several files).
        files: the file each document came from, when the data joins several files
            (`concat`); None when every row is `source`'s.
    """

    texts: list[str]
    label_sets: list[list[str]]
    rows: list[int]
    source: str
    dropped: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    files: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabelledData:
        """The documents at `indices`, in that order (drops are not carried over)."""
        return LabelledData(
            texts=[self.texts[i] for i in indices],
            label_sets=[self.label_sets[i] for i in indices],
            rows=[self.rows[i] for i in indices],
            source=self.source,
            files=None if self.files is None else [self.files[i] for i in indices],
        )

    def locate(self, indices: Sequence[int], limit: int = 5) -> str:
        """Where the documents at `indices` are: `"data rows 3, 8"`, with each file named when
        the data joins several (`"a.csv data rows 3, 8; b.csv data rows 2"`)."""
        if self.files is None:
            return f"data rows {format_rows([self.rows[i] for i in indices], limit)}"
        by_file: dict[str, list[int]] = {}
        for i in indices:
            by_file.setdefault(self.files[i], []).append(self.rows[i])
        return "; ".join(f"{file} data rows {format_rows(rows, limit)}" for file, rows in by_file.items())

    @property
    def num_dropped(self) -> int:
        return sum(len(rows) for rows in self.dropped.values())

    def summary(self) -> str:
        """One line on what was read and dropped, e.g. for the CLI to print."""
        line = f"{self.source}: read {len(self)} documents"
        if self.num_dropped:
            parts = [f"{len(r)} {reason} (data rows {format_rows(r)})" for reason, r in self.dropped.items()]
            line += f", dropped {self.num_dropped} invalid rows: " + "; ".join(parts)
        return line


def read_labelled_csv(path, fmt: CSVFormat = CSVFormat()) -> LabelledData:
    """Reads a whole labelled CSV into memory. See `read_chunks` for the rules.

    Raises:
        InputError: also when every data row was dropped.
    """
    return _nonempty(concat([data for _, data in read_chunks(path, fmt)], str(path)))


def read_texts(path, fmt: CSVFormat = CSVFormat()) -> LabelledData:
    """Reads only the text column (labels, if any, are ignored)."""
    return _nonempty(concat([data for _, data in read_chunks(path, fmt, with_labels=False)], str(path)))


def _nonempty(data: LabelledData) -> LabelledData:
    if not len(data):
        raise InputError(f"{data.summary()}: no documents are left; fix the rows or read another file")
    return data


def read_chunks(
    path,
    fmt: CSVFormat = CSVFormat(),
    *,
    with_labels: bool = True,
    chunksize: int | None = None,
    rows: tuple[int, int] | None = None,
) -> Iterator[tuple[pd.DataFrame, LabelledData]]:
    """Reads a CSV in chunks of `chunksize` rows (all at once when None).

    Args:
        path, fmt: the file and its format.
        with_labels: parse the labels too.
        chunksize: data rows per chunk read (None: the whole file at once).
        rows: `(first, last)`: only the data rows numbered `first` to `last` (1-based,
            inclusive; `count_rows` counts them) are parsed, checked and yielded; the
            others are read past. None: every row.

    Yields:
        `(frame, data)`: the chunk's rows as read (all columns: a CSV's as strings, a
        JSON Lines file's fields as parsed, a field a line lacks as `MISSING`; invalid
        rows removed when `fmt.drop_invalid`) and the parsed `LabelledData` (label sets
        empty when `with_labels` is False). A JSON Lines chunk has the fields its lines
        have: `survey` lists those of the whole file.

    Raises:
        InputError: missing file (or a folder) or column, empty file, header without
            rows, bad encoding, malformed CSV or JSON Lines (a lone surrogate escaped in
            a line), or an invalid row (unless `fmt.drop_invalid`).
    """
    path = _existing_file(path)
    first, last = rows if rows is not None else (1, None)
    first_row, yielded = 1, False
    for frame in _read_frames(path, fmt, chunksize):
        if first_row == 1:
            _check_columns(path, frame, fmt, with_labels)
        if len(frame) == 0:
            break
        start, first_row = first_row, first_row + len(frame)
        if first_row <= first:  # the whole chunk comes before the rows asked for
            continue
        if last is not None and start > last:
            if not yielded:  # no row asked for: one empty chunk, so callers still see the columns
                yield frame.iloc[:0], _parse(frame.iloc[:0], fmt, path, start, with_labels)[1]
            break
        if rows is not None:
            frame = frame.iloc[max(first - start, 0) : None if last is None else last - start + 1]
            start = max(start, first)
        kept, data = _parse(frame, fmt, path, start, with_labels)
        yielded = True
        yield frame[kept], data
    if first_row == 1:
        raise InputError(f"{path}: has a header but no data rows; add at least one row under the header")


def count_rows(path, fmt: CSVFormat = CSVFormat()) -> int:
    """The data rows of a CSV (blank ones included, as `read_chunks` numbers them), in one streamed pass.

    Raises:
        InputError: as `read_chunks` does for an unreadable file.
    """
    return survey(path, fmt)[0]


def survey(path, fmt: CSVFormat = CSVFormat()) -> tuple[int, list[str]]:
    """`(count_rows(path), columns)` in one streamed pass: the columns are a CSV's header, or
    every field of a JSON Lines file, in the order they first appear (later lines may add some).

    Raises:
        InputError: as `read_chunks` does for an unreadable file.
    """
    path = _existing_file(path)
    rows, columns = 0, {}
    for frame in _read_frames(path, fmt, COUNT_CHUNK):
        rows += len(frame)
        columns.update(dict.fromkeys(frame.columns))
    return rows, list(columns)


def _existing_file(path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file; name one of the files in it")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


# Rows per chunk when `count_rows` streams a file.
COUNT_CHUNK = 10_000


def shard_rows(num_rows: int, shard: int, num_shards: int) -> tuple[int, int]:
    """`(first, last)` data rows (1-based, inclusive; `first > last` when empty) of part `shard`
    (1-based) of `num_shards` contiguous, disjoint parts that together cover rows 1 to `num_rows`."""
    return (shard - 1) * num_rows // num_shards + 1, shard * num_rows // num_shards


def is_jsonl(path) -> bool:
    """Whether `path` names a JSON Lines file (`.jsonl`, `.ndjson`, optionally compressed)."""
    return bool({".jsonl", ".ndjson"} & set(Path(path).suffixes))


def _read_frames(path: Path, fmt: CSVFormat, chunksize: int | None) -> Iterator[pd.DataFrame]:
    if is_jsonl(path):
        yield from _read_jsonl_frames(path, fmt, chunksize)
        return
    sep = "\t" if ".tsv" in path.suffixes else ","
    try:
        reader = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            skip_blank_lines=False,  # counted and dropped in `_parse`, so row numbers stay line numbers
            na_filter=False,  # "NA", "null", "" stay strings: a label may be called "NA"
            encoding=fmt.encoding,
            chunksize=chunksize,
            compression="infer",
        )
        if chunksize is None:
            yield reader
        else:
            with reader:
                yield from reader
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path}: the file is empty; a labelled CSV needs a header row "
            f"(e.g. '{fmt.text_column},{fmt.labels_column}') and data rows"
        ) from None
    except UnicodeDecodeError as err:
        raise InputError(_decode_error_message(path, fmt.encoding, err)) from None
    except LookupError:
        raise _unknown_encoding(fmt.encoding) from None
    except (zlib.error, zipfile.BadZipFile, lzma.LZMAError, gzip.BadGzipFile, EOFError) as err:
        raise InputError(_damaged_message(path, err)) from None
    except pd.errors.ParserError as err:
        message = " ".join(str(err).split())
        raise InputError(
            f"{path}: not a readable CSV ({message}); check the quoting and the number of fields"
        ) from None
    except (OSError, ValueError) as err:  # bz2's "Invalid data stream", a .zip of several files, ...
        if _compression(path):
            raise InputError(_damaged_message(path, err)) from None
        raise InputError(f"{path}: cannot be read as a CSV ({first_line(err)})") from None


def _read_jsonl_frames(path: Path, fmt: CSVFormat, chunksize: int | None) -> Iterator[pd.DataFrame]:
    """JSON Lines as the CSV reader's frames: one row per line (data row N is line N), a
    column per field, the labels field a list of names; a missing text or labels field
    reads as empty, and a blank line as an empty row, for `_parse` to count or refuse."""
    if fmt.label_columns is not None:
        raise InputError(
            f"{path}: {option('label_columns')} is for one-hot CSV columns; JSON Lines hold a list of labels"
        )
    records, number = [], 0
    try:
        with _open_binary(path) as raw:
            for number, line in enumerate(io.TextIOWrapper(raw, encoding=fmt.encoding), 1):
                records.append(_json_record(path, number, line, fmt))
                if chunksize is not None and len(records) == chunksize:
                    yield _jsonl_frame(records, fmt)
                    records = []
    except UnicodeDecodeError as err:
        raise InputError(_decode_error_message(path, fmt.encoding, err)) from None
    except LookupError:
        raise _unknown_encoding(fmt.encoding) from None
    except (zlib.error, zipfile.BadZipFile, lzma.LZMAError, gzip.BadGzipFile, EOFError, OSError) as err:
        raise InputError(_damaged_message(path, err)) from None
    if not number:
        raise InputError(
            f"{path}: the file is empty; a JSON Lines file holds one object per line, "
            f'e.g. {{"{fmt.text_column}": "...", "{fmt.labels_column}": ["a", "b"]}}'
        )
    if records:
        yield _jsonl_frame(records, fmt)


class _Missing(str):
    """A field a JSON Lines record does not have: reads as `""`, but is not a value to write."""

    __slots__ = ()


# The cell of a field a JSON Lines line lacks (equal to ""; `cell is MISSING` tells it apart).
MISSING = _Missing("")


def _json_record(path: Path, number: int, line: str, fmt: CSVFormat) -> dict:
    """One line's object, its text and labels fields checked for type, and every string in
    it for lone surrogates (a blank line: `{}`)."""
    if not line.strip():
        return {}
    try:
        record = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {number} is not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object with fields")
    if _SURROGATE_ESCAPE.search(line):  # a `\\uXXXX` escape may decode to half a surrogate pair
        _check_surrogates(path, number, record)
    text = record.get(fmt.text_column, "")
    if not isinstance(text, str):
        raise InputError(
            f"{path}: line {number}: field {fmt.text_column!r} holds {json.dumps(text)}, not a string; "
            f"give each line its text as a JSON string"
        )
    labels = record.get(fmt.labels_column, [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InputError(
            f"{path}: line {number}: field {fmt.labels_column!r} holds {json.dumps(labels)}, not a list of label "
            f'names; write e.g. "{fmt.labels_column}": ["a", "b"] (or [] for none)'
        )
    return record


# An escape of a surrogate (U+D800 to U+DFFF): half of a pair, or a lone one that is not text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def first_surrogate(text: str) -> int | None:
    """Where the first surrogate in `text` is (a lone one: a pair is one character), or None."""
    match = _SURROGATE.search(text)
    return match.start() if match else None


def _check_surrogates(path: Path, number: int, record: dict) -> None:
    """An InputError naming the first field of `record` that holds a lone surrogate (`"\\ud800"`):
    JSON can escape one, but it is not text, and no UTF-8 file (no output) can hold it."""
    for field, value in record.items():
        for where, found in (
            (f"the field name {json.dumps(field)}", _surrogate(field)),
            (f"field {field!r}", _surrogate(value)),
        ):
            if found is not None:
                raise InputError(
                    f"{path}: line {number}: {where} holds a lone surrogate \\u{ord(found[0][found[1]]):04x} "
                    f"(character {found[1] + 1}), which is not Unicode text; write the character itself, or a "
                    f"character above \\uffff as its escaped pair, e.g. \\ud83d\\ude00"
                )


def _surrogate(value) -> tuple[str, int] | None:
    """The first string in `value` (a JSON value) holding a surrogate, and where; None if none does."""
    if isinstance(value, str):
        match = _SURROGATE.search(value)
        return (value, match.start()) if match else None
    if isinstance(value, dict):
        value = [part for item in value.items() for part in item]
    if isinstance(value, list):
        for item in value:
            if (found := _surrogate(item)) is not None:
                return found
    return None


def _jsonl_frame(records: list[dict], fmt: CSVFormat) -> pd.DataFrame:
    """The records as a frame of their values as parsed (ints stay ints, lists lists, null
    None), a field a line lacks as `MISSING`, a blank line as an empty row."""
    columns = dict.fromkeys(field for record in records for field in record)
    cells = {field: [record.get(field, MISSING) for record in records] for field in columns}
    return pd.DataFrame(cells, index=pd.RangeIndex(len(records)), columns=list(columns), dtype=object)


NEWLINE = b"\n"
# File suffix -> the compression pandas infers from it.
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}


def _compression(path: Path) -> str | None:
    return _COMPRESSIONS.get(path.suffix)


def _damaged_message(path: Path, err: BaseException) -> str:
    kind = _compression(path) or "compressed"
    return (
        f"{path}: the {kind} data is damaged or not {kind} at all ({' '.join(first_line(err).split())}); "
        f"re-create or re-download the file"
    )


def _open_binary(path: Path):
    """`path` opened for reading bytes, decompressed as its suffix says (as pandas reads it)."""
    kind = _compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    if kind == "zip":
        archive = zipfile.ZipFile(path)
        return archive.open(archive.namelist()[0])
    return open(path, "rb")


def _decode_error_message(path: Path, encoding: str, err: UnicodeDecodeError) -> str:
    where = "somewhere"
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0  # newlines before the current block
    with _open_binary(path) as f:
        while block := f.read(1 << 20):
            pending = decoder.getstate()[0]  # bytes of a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                data = pending + block
                where = f"line {lines + data.count(NEWLINE, len(pending), e.start) + 1} (byte 0x{data[e.start]:02x})"
                break
            lines += block.count(NEWLINE)
    return (
        f"{path}: {where} is not valid {encoding} ({err.reason}); "
        f"pass the file's encoding with {option('encoding')}, e.g. {option('encoding', 'latin-1')}"
    )


def _unknown_encoding(encoding: str) -> InputError:
    return InputError(f"{option('encoding', encoding)} is not an encoding Python knows; try utf-8 or latin-1")


def is_utf8(path) -> bool | None:
    """Whether the (decompressed) file is valid UTF-8: None when it is plain ASCII (valid
    in every common encoding), True when it also holds other valid UTF-8, else False."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    ascii_only = True
    try:
        with _open_binary(Path(path)) as f:
            while block := f.read(1 << 20):
                decoder.decode(block)
                ascii_only = ascii_only and block.isascii()
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except (OSError, EOFError, ValueError, IndexError, zlib.error, zipfile.BadZipFile, lzma.LZMAError):
        return None  # the reader itself reports a damaged file
    return None if ascii_only else True


def _check_columns(path: Path, frame: pd.DataFrame, fmt: CSVFormat, with_labels: bool) -> None:
    found = ", ".join(map(str, frame.columns))
    if fmt.text_column not in frame.columns:
        raise InputError(
            f"{path}: no text column {fmt.text_column!r} (columns found: {found}); "
            f"name the text column with {option('text_column')}"
        )
    if not with_labels:
        return
    if fmt.label_columns is not None:
        missing = [c for c in fmt.label_columns if c not in frame.columns]
        if missing:
            raise InputError(
                f"{path}: no one-hot label columns {', '.join(map(repr, missing))} (columns found: {found}); "
                f"name the one-hot columns with {option('label_columns')}, or a labels column with "
                f"{option('labels_column')}"
            )
    elif fmt.labels_column not in frame.columns:
        raise InputError(
            f"{path}: no labels column {fmt.labels_column!r} (columns found: {found}); "
            f"name it with {option('labels_column')}, or give one-hot columns with "
            f"{option('label_columns', ('a', 'b', 'c'))}"
        )


def _parse(
    frame: pd.DataFrame, fmt: CSVFormat, path: Path, first_row: int, with_labels: bool
) -> tuple[np.ndarray, LabelledData]:
    rows = np.arange(first_row, first_row + len(frame))
    named = [fmt.text_column] + ([fmt.labels_column] if with_labels and fmt.label_columns is None else [])
    lacking = [column for column in named if column not in frame.columns]  # a JSON Lines chunk without the field
    if lacking:
        frame = frame.assign(**dict.fromkeys(lacking, MISSING))
    texts = frame[fmt.text_column].to_numpy(dtype=object)
    invalid = {
        EMPTY_ROW: frame.eq("").all(axis=1).to_numpy(),
        EMPTY_TEXT: frame[fmt.text_column].str.strip().eq("").to_numpy(),
    }

    if not with_labels:
        label_sets = [[] for _ in range(len(frame))]
    elif fmt.label_columns is not None:
        cells = frame[list(fmt.label_columns)].apply(lambda col: col.str.strip())
        ok = cells.isin(["0", "1"])
        invalid[BAD_ONE_HOT] = ~ok.all(axis=1).to_numpy() & ~invalid[EMPTY_ROW]
        names = np.array(fmt.label_columns, dtype=object)
        on = cells.eq("1").to_numpy()
        label_sets = [list(names[r]) for r in on]
    else:  # a joined CSV cell, or a JSON Lines list
        label_sets = [
            clean_labels(cell) if isinstance(cell, list) else split_labels(cell, fmt.label_sep)
            for cell in frame[fmt.labels_column]
        ]
    if with_labels and not fmt.allow_empty_labels:
        invalid[EMPTY_LABELS] = np.array([not labels for labels in label_sets], dtype=bool)

    fixes = {
        EMPTY_TEXT: f"fill in column {fmt.text_column!r} or pass {option('drop_invalid', True)} to skip the rows",
        EMPTY_LABELS: f"pass {option('allow_empty_labels', True)} if documents may have no label, or "
        f"{option('drop_invalid', True)} to skip the rows",
    }
    dropped = {}
    keep = np.ones(len(frame), dtype=bool)
    for reason, bad in invalid.items():
        bad = bad & keep  # a row is counted once, under its first problem
        if bad.any():
            dropped[reason] = rows[bad].tolist()
            keep &= ~bad
    errors = {reason: bad_rows for reason, bad_rows in dropped.items() if reason != EMPTY_ROW}
    if errors and not fmt.drop_invalid:
        # The problem of the first invalid row, so that any chunking of the file reports the same one.
        reason = min(errors, key=lambda r: errors[r][0])
        if reason == BAD_ONE_HOT:
            i = errors[reason][0] - first_row
            column = str(ok.columns[~ok.iloc[i].to_numpy()][0])
            raise InputError(
                f"{path}: one-hot label cells must be 0 or 1, but column {column!r} holds "
                f"{frame[column].iloc[i]!r} in data row {rows[i]} (invalid data rows: {format_rows(errors[reason])}); "
                f"fix those cells or pass {option('drop_invalid', True)} to skip the rows"
            )
        if reason == EMPTY_TEXT or fmt.label_columns is None:
            where = f"column {fmt.text_column if reason == EMPTY_TEXT else fmt.labels_column!r}"
        else:
            shown = ", ".join(map(repr, fmt.label_columns[:5])) + (", ..." if len(fmt.label_columns) > 5 else "")
            where = f"one-hot columns {shown}"
        raise InputError(f"{path}: {reason} in {where} at data rows {format_rows(errors[reason])}; {fixes[reason]}")

    data = LabelledData(
        texts=[str(t) for t in texts[keep]],
        label_sets=[labels for labels, k in zip(label_sets, keep) if k],
        rows=rows[keep].tolist(),
        source=str(path),
        dropped=dropped,
    )
    return keep, data


def check_texts(texts, what: str = "texts") -> list[str]:
    """`texts` as a list of strings, or an InputError naming the first item that is not
    one, or that cannot be written as UTF-8 (a lone surrogate such as `"\\ud800"`)."""
    if isinstance(texts, str):
        raise InputError(f"{what}: expected a list of texts, not one string; wrap it: [text]")
    try:
        texts = list(texts)
    except TypeError:
        raise InputError(f"{what}: expected a list of texts, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"{what}: item {i} is {type(text).__name__} {text!r}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InputError(
                f"{what}: item {i} is not valid Unicode text ({err.reason} at character {err.start}); "
                f"decode the text with the right encoding first"
            ) from None
    return texts


def split_labels(cell: str, sep: str = "|") -> list[str]:
    """`" b | a|b||"` -> `["b", "a"]`: split, then `clean_labels`."""
    return clean_labels(cell.split(sep))


def clean_labels(labels) -> list[str]:
    """`[" b ", "a", "b", ""]` -> `["b", "a"]`: strip, drop empty names, collapse duplicates."""
    return list(dict.fromkeys(label for label in (piece.strip() for piece in labels) if label))


def from_lists(texts, label_sets, source: str, *, allow_empty_labels: bool = False) -> LabelledData:
    """Texts and label sets given in Python, checked by the CSV reader's rules.

    Labels are stripped, empty names dropped and duplicates collapsed (`clean_labels`);
    an empty or blank text is an error, and so is an empty label set unless
    `allow_empty_labels`. Items count from 0.

    Raises:
        InputError: naming the first bad item.
    """
    texts = check_texts(texts, source)
    if isinstance(label_sets, str) or not hasattr(label_sets, "__iter__"):
        raise InputError(f"{source}: expected a list of label sets, got {type(label_sets).__name__}")
    label_sets = [_label_set(labels, i, source) for i, labels in enumerate(label_sets)]
    if len(texts) != len(label_sets):
        raise InputError(f"{source}: {len(texts)} texts but {len(label_sets)} label sets")
    if not texts:
        raise InputError(f"{source}: no documents; give at least one text and its label set")
    blank = [i for i, text in enumerate(texts) if not text.strip()]
    if blank:
        raise InputError(f"{source}: {EMPTY_TEXT} at items {format_rows(blank)}; give every document its text")
    empty = [i for i, labels in enumerate(label_sets) if not labels]
    if empty and not allow_empty_labels:
        raise InputError(
            f"{source}: {EMPTY_LABELS} at items {format_rows(empty)}; "
            f"pass allow_empty_labels=True if documents may have no label"
        )
    return LabelledData(texts=texts, label_sets=label_sets, rows=list(range(1, len(texts) + 1)), source=source)


def _label_set(labels, i: int, source: str) -> list[str]:
    """Label set `i` as clean label names, or an InputError if it is a string (one label
    must be wrapped: `["earn"]`, not `"earn"`), not a collection, or holds a non-string."""
    if isinstance(labels, str):
        raise InputError(f"{source}: label set {i} is the string {labels!r}; give a list of labels, e.g. [{labels!r}]")
    if not hasattr(labels, "__iter__"):
        raise InputError(f"{source}: label set {i} is {labels!r}; give a list of label names ([] for none)")
    labels = list(labels)
    for label in labels:
        if not isinstance(label, str):
            raise InputError(f"{source}: label set {i} holds {type(label).__name__} {label!r}, not a label name string")
        if _SURROGATE.search(label):
            raise InputError(
                f"{source}: label set {i} holds {label!r}, which is not valid Unicode text (a lone surrogate); "
                f"decode the labels with the right encoding first"
            )
    return clean_labels(labels)


def concat(chunks: list[LabelledData], source: str) -> LabelledData:
    """The documents of `chunks` one after the other, their drops together, as `source`.

    Chunks of several files keep each document's file (`LabelledData.files`) and each
    drop's (`"empty text in a.csv"`), so that messages name the file as well as the row.
    """
    several = len({c.source for c in chunks if c.files is None} | {f for c in chunks for f in c.files or ()}) > 1
    dropped: dict[str, list[int]] = {}
    for chunk in chunks:
        for reason, rows in chunk.dropped.items():
            in_file = several and chunk.files is None  # a concat of several files already names them
            dropped.setdefault(f"{reason} in {chunk.source}" if in_file else reason, []).extend(rows)
    return LabelledData(
        texts=[t for c in chunks for t in c.texts],
        label_sets=[s for c in chunks for s in c.label_sets],
        rows=[r for c in chunks for r in c.rows],
        source=source,
        dropped=dropped,
        files=[f for c in chunks for f in (c.files or [c.source] * len(c))] if several else None,
    )


def train_dev_split(data: LabelledData, dev_fraction: float = 0.1, seed: int = 0) -> tuple[LabelledData, LabelledData]:
    """A seeded random split of `data` into (train, dev); both keep file order.

    Raises:
        InputError: if `dev_fraction` is not in (0, 1) or leaves either side empty.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise bad_value("dev_fraction", dev_fraction, "must be between 0 and 1 (exclusive)")
    n_dev = int(round(len(data) * dev_fraction))
    if n_dev < 1 or n_dev >= len(data):
        raise InputError(
            f"{data.source}: {option('dev_fraction', dev_fraction)} of {len(data)} documents leaves an empty "
            f"{'dev' if n_dev < 1 else 'train'} set; give a dev set or change {option('dev_fraction')}"
        )
    order = np.random.default_rng(seed).permutation(len(data))
    dev_idx = np.sort(order[:n_dev])
    train_idx = np.sort(order[n_dev:])
    return data.subset(train_idx.tolist()), data.subset(dev_idx.tolist())
