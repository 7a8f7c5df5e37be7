"""The bundled datasets: Reuters-21578 (ModApte, 90 labels) and Cooking Stack Exchange.

Each lives in a folder beside this file with its README (origin, terms, statistics),
`labels.txt` and one gzip CSV per official split (columns `text` and `labels`, labels
joined by `|`). Reuters-21578 has no dev split; commands that need one cut it from
train (`--dev-fraction`).

Example:
    >>> from mlgen.data import datasets
    >>> datasets.names()
    ['cooking_se', 'reuters21578']
    >>> df = datasets.load("reuters21578", "test")   # columns: text, labels (lists)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlgen.data.reader import CSVFormat, LabelledData, read_labelled_csv
from mlgen.errors import InputError

DEFAULT = "reuters21578"
_ROOT = Path(__file__).resolve().parent


def names() -> list[str]:
    """The bundled dataset names, sorted."""
    return sorted(p.name for p in _ROOT.iterdir() if p.is_dir() and (p / "labels.txt").is_file())


def splits(name: str) -> list[str]:
    """The official splits of `name`, in train/dev/test order."""
    folder = _folder(name)
    return [s for s in ("train", "dev", "test") if (folder / f"{s}.csv.gz").is_file()]


def path(name: str, split: str) -> Path:
    """The gzip CSV of one split."""
    if split not in splits(name):
        raise InputError(f"dataset {name!r} has no split {split!r}; its splits are: {', '.join(splits(name))}")
    return _folder(name) / f"{split}.csv.gz"


def labels(name: str) -> list[str]:
    """The dataset's whole label set (`labels.txt`), sorted."""
    return (_folder(name) / "labels.txt").read_text(encoding="utf-8").split()


def read(name: str, split: str) -> LabelledData:
    """One split as `LabelledData` (texts, label sets, rows)."""
    data = read_labelled_csv(path(name, split), CSVFormat())
    data.source = f"{name}:{split}"
    return data


def load(name: str, split: str) -> pd.DataFrame:
    """One split as a DataFrame with columns `text` (str) and `labels` (list of str)."""
    data = read(name, split)
    return pd.DataFrame({"text": data.texts, "labels": data.label_sets})


def _folder(name: str) -> Path:
    if name not in names():
        raise InputError(f"unknown dataset {name!r}; the bundled datasets are: {', '.join(names())}")
    return _ROOT / name
