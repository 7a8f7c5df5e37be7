"""The run folder: what a trained model is on disk, written atomically. stdlib only.

A run folder holds `model.keras` (network, text vectorizer and label names),
`config.json` (every hyperparameter and the CSV format), `label_vocab.json`,
`metrics.json` (dev scores, timings) and `history.json` (per-epoch logs), plus
TensorBoard logs under `logs/`. `mlgen.load(folder)` needs nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from mlgen.errors import InputError

MODEL = "model.keras"
CONFIG = "config.json"
LABEL_VOCAB = "label_vocab.json"
METRICS = "metrics.json"
HISTORY = "history.json"
LOGS = "logs"


@contextlib.contextmanager
def atomic_dir(path):
    """Yields an empty staging folder that replaces `path` only if the block succeeds.

    A crash or an exception inside the block leaves a previous `path` untouched. The
    staging folder sits beside `path` (same file system) so the swap is two renames.

    Raises:
        InputError: if `path` is a file, or a non-empty folder that is not a run folder
            (so that `--out .` can never wipe a working directory).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file; --out needs a folder path")
    if path.is_dir() and any(path.iterdir()) and not (path / CONFIG).is_file():
        raise InputError(f"{path}: is a non-empty folder that is not an mlgen run folder; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(staging, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_run_dir(path) -> Path:
    """`path` as a Path if it holds a run's config, else a clear InputError."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise InputError(f"{path}: not an mlgen run folder (no {CONFIG}); pass the --out folder of `mlgen train`")
    return path
