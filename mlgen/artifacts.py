"""The run folder: what a trained model is on disk, written atomically. stdlib only.

A run folder holds `config.json` (the model type, every hyperparameter and the CSV
format), `label_vocab.json`, `metrics.json` (dev scores, timings), `history.json`
(per-epoch logs) and the model itself: `model.keras` (network, text vectorizer and
label names) for cnn-rnn and cnn-br, `linear.npz` (arrays only, no pickle) for linear-br;
binary-relevance models add `thresholds.json`. Keras models add TensorBoard logs under
`logs/`. `mlgen.load(folder)` needs nothing else.
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
THRESHOLDS = "thresholds.json"  # binary relevance: the decision threshold(s) tuned on dev
LINEAR = "linear.npz"  # linear-br: TF-IDF weights and classifier coefficients (no pickle)
LOGS = "logs"


@contextlib.contextmanager
def atomic_dir(path, marker: str = CONFIG, kind: str = "mlgen run folder"):
    """Yields an empty staging folder that replaces `path` only if the block succeeds.

    A crash or an exception inside the block leaves a previous `path` untouched. The
    staging folder sits beside `path` (same file system) so the swap is two renames;
    a crash between them leaves the previous folder as `.NAME.old-PID` beside it,
    which `check_run_dir` points to.

    Args:
        path: the folder to write.
        marker: a file every folder of this kind holds; only such a folder (or an
            empty one) is replaced, so that `--out .` can never wipe a working directory.
        kind: what the folder is, for the error message.

    Raises:
        InputError: if `path` is a file, or a non-empty folder without `marker`.
    """
    path = check_out_dir(path, marker, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it owner-only; a run folder gets the usual permissions
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


def check_out_dir(path, marker: str = CONFIG, kind: str = "mlgen run folder") -> Path:
    """`path` if `atomic_dir(path, marker, kind)` may replace it, else the InputError it would raise.

    Commands that work long before they write call this first.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file; --out needs a folder path")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise InputError(f"{path}: is a non-empty folder that is not an {kind}; choose another --out")
    return path


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path` that replaces `path` only if the block succeeds.

    The temporary name keeps `path`'s suffixes (`.csv.gz` stays compressed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def check_run_dir(path) -> Path:
    """`path` as a Path if it holds a run's config, else a clear InputError."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        left = sorted(path.parent.glob(f".{path.name}.old-*")) if not path.exists() else []
        if left:
            raise InputError(
                f"{path}: missing; a save was interrupted while replacing it and the previous run is at {left[-1]}: "
                f"rename that folder to {path.name}"
            )
        raise InputError(f"{path}: not an mlgen run folder (no {CONFIG}); pass the --out folder of `mlgen train`")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
