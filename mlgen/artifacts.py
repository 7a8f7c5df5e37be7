"""The run folder: what a trained model is on disk, written atomically. stdlib only.

A run folder holds `config.json` (the model type, every hyperparameter and the CSV
format), `label_vocab.json`, `metrics.json` (dev scores, timings), `history.json`
(per-epoch logs) and the model itself: `model.keras` (network, text vectorizer and
label names) for cnn-rnn and cnn-br, `linear.npz` (arrays only, no pickle) for linear-br;
binary-relevance models add `thresholds.json`. Keras models add TensorBoard logs under
`logs/`. `mlgen.load(folder)` needs nothing else.

mlgen never deletes what it did not write: a folder is replaced only when it is
empty or recognisably one of mlgen's own (its marker file written by mlgen, and
nothing in it but the files mlgen writes there). Anything else is refused with an
`InputError` before any work starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from mlgen.errors import InputError, first_line, format_rows

MODEL = "model.keras"
CONFIG = "config.json"
LABEL_VOCAB = "label_vocab.json"
METRICS = "metrics.json"
HISTORY = "history.json"
THRESHOLDS = "thresholds.json"  # binary relevance: the decision threshold(s) tuned on dev
LINEAR = "linear.npz"  # linear-br: TF-IDF weights and classifier coefficients (no pickle)
DECISION = "decision.json"  # cnn-rnn: the decision rule fitted on dev
LOGS = "logs"

# The model types, as `config.json`'s `model_type` names them: each name is written here alone.
# `mlgen.registry.MODEL_TYPES` is their table (what each reads and supports); every other mention in
# the package is checked against it (tests/test_registry.py).
CNN_RNN = "cnn-rnn"
CNN_BR = "cnn-br"
LINEAR_BR = "linear-br"


@dataclasses.dataclass(frozen=True)
class FolderKind:
    """A kind of folder mlgen writes as a whole.

    Attributes:
        name: what the folder is, for messages ("mlgen run folder").
        marker: a JSON file every such folder holds.
        marker_key: a key of the marker's object that only mlgen writes.
        files: every name mlgen writes in such a folder.
    """

    name: str
    marker: str
    marker_key: str
    files: frozenset[str]


RUN_FOLDER = FolderKind(
    "mlgen run folder",
    CONFIG,
    "mlgen_version",
    frozenset({MODEL, CONFIG, LABEL_VOCAB, METRICS, HISTORY, THRESHOLDS, LINEAR, DECISION, LOGS}),
)


def is_own_folder(path: Path, kind: FolderKind = RUN_FOLDER) -> bool:
    """Whether `path` is a folder mlgen wrote as a `kind`: its marker is an mlgen one and
    nothing else lives in it."""
    if not path.is_dir() or not set(os.listdir(path)) <= kind.files:
        return False
    try:
        marker = json.loads((path / kind.marker).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(marker, dict) and kind.marker_key in marker


def check_out_dir(path, kind: FolderKind = RUN_FOLDER, flag: str = "--out", inputs=()) -> Path:
    """`path` if `atomic_dir(path, kind)` may write it, else the InputError it would raise.

    Commands that work long before they write call this first, with the files they
    read as `inputs`: none of them may lie inside `path`.
    """
    path = Path(path)
    _check_parents(path, flag)
    for source in inputs:
        if source is not None and path.resolve() in Path(source).resolve().parents:
            raise InputError(f"{path}: holds the input file {source}; choose another {flag}")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file; {flag} needs a folder path")
    if path.is_dir() and os.listdir(path) and not is_own_folder(path, kind):
        foreign = sorted(set(os.listdir(path)) - kind.files)
        what = f"holds files mlgen did not write ({format_rows(foreign)})" if foreign else f"is not an {kind.name}"
        raise InputError(
            f"{path}: {what}; only {kind.name}s are replaced, and other files are never deleted: "
            f"choose another {flag} (a new or empty folder)"
        )
    return path


def check_out_file(path, flag: str, inputs=()) -> Path:
    """`path` if a command may write the file there, else an InputError, before any work.

    Args:
        path: the output file.
        flag: the option that named it, for the message.
        inputs: files the command reads; the output must be none of them.
    """
    path = Path(path)
    _check_parents(path, flag)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; {flag} needs a file path")
    for source in inputs:
        if source is not None and path.resolve() == Path(source).resolve():
            raise InputError(f"{path}: {flag} must differ from the input file")
    return path


def _check_parents(path: Path, flag: str) -> None:
    """An InputError unless `path`'s first existing ancestor is a writable folder."""
    try:
        path.resolve()
    except (RuntimeError, OSError) as err:  # a symlink loop (RuntimeError before Python 3.13, OSError after)
        raise InputError(
            f"{path}: {flag} goes through a loop of symbolic links ({first_line(err)}); choose another {flag}"
        ) from None
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: {flag} is below {parent}, which is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: {flag} cannot be written: no permission to write in {parent}")


@contextlib.contextmanager
def atomic_dir(path, kind: FolderKind = RUN_FOLDER):
    """Yields an empty staging folder that replaces `path` only if the block succeeds.

    A crash or an exception inside the block leaves a previous `path` untouched. The
    staging folder sits beside `path` (same file system) so the swap is two renames;
    a crash between them leaves the previous folder as `.NAME.old-PID` beside it,
    which the next `atomic_dir(path)` moves back (and `check_run_dir` points to).
    What an interrupted earlier run left beside `path` is removed first.

    Args:
        path: the folder to write.
        kind: only an empty folder or one of this kind is replaced (`check_out_dir`).

    Raises:
        InputError: if `path` may not be written (see `check_out_dir`).
    """
    path = Path(path)
    if path.parent.is_dir():
        clean_interrupted(path)
    path = check_out_dir(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
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


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path` that replaces `path` only if the block succeeds.

    The temporary name keeps `path`'s suffixes (`.csv.gz` stays compressed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_interrupted(path)
    partial = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def clean_interrupted(path: Path) -> list[Path]:
    """Removes what a killed mlgen process left beside `path`; returns what it removed.

    Only names mlgen makes, and only those of processes that no longer run: staging
    folders `.NAME.tmp-PID-*`, partial files `.tmp-PID-NAME`, and a previous folder
    `.NAME.old-PID`, which is moved back to `path` when `path` is missing (the swap was
    cut between its two renames) and removed when `path` is there.
    """
    removed = []
    name = re.escape(path.name)
    patterns = (rf"\.{name}\.tmp-(\d+)-.+", rf"\.tmp-(\d+)-{name}", rf"\.{name}\.old-(\d+)")
    for entry in sorted(path.parent.iterdir()):
        for pattern in patterns:
            match = re.fullmatch(pattern, entry.name)
            if not match or running(int(match.group(1))):
                continue
            if pattern.endswith(r"old-(\d+)") and not path.exists() and entry.is_dir():
                os.replace(entry, path)
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def running(pid: int) -> bool:
    """Whether process `pid` runs (this one does; one we may not signal counts as running),
    which tells a leftover of a killed mlgen process from a live one's."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def versions() -> dict:
    """The versions of Python and the libraries a run is written with (for `mlgen info`),
    from the installed packages' metadata: nothing is imported."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name, packages in (
        ("tensorflow", ("tensorflow-cpu", "tensorflow")),
        ("keras", ("keras",)),
        ("scikit-learn", ("scikit-learn",)),
    ):
        for package in packages:
            try:
                found[name] = metadata.version(package)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


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


def read_json(folder, name: str, expected: type = dict, *, required: bool = True):
    """The JSON value in `folder/name`, checked to be an `expected`; None if absent and
    not `required`.

    Raises:
        InputError: naming the folder and the file when it is missing, unreadable, not
            JSON, or holds another type.
    """
    path = Path(folder) / name
    damaged = f"{folder}: {name}"
    fix = "retrain, or restore the run folder from a copy"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not required:
            return None
        raise InputError(f"{damaged} is missing: the run folder is incomplete; {fix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{damaged} cannot be read ({first_line(err)}); {fix}") from None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InputError(f"{damaged} is not valid JSON ({err}); {fix}") from None
    if not isinstance(value, expected):
        raise InputError(f"{damaged} holds a {type(value).__name__}, not the {expected.__name__} mlgen writes; {fix}")
    return value


def damaged(folder, name: str, problem: str) -> InputError:
    """The InputError for a run file that is there but unusable."""
    return InputError(f"{folder}: {name} {problem}; retrain, or restore the run folder from a copy")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def model_file(folder: Path, name: str, config: dict) -> Path:
    """`folder/name`, the model file of `config`'s model type, or an InputError that says
    which model file the folder holds instead."""
    path = folder / name
    if path.is_file():
        return path
    if name == LINEAR and model_type(config) != LINEAR_BR:
        # A network's folder holds both: model.keras, and linear.npz for its linear-br ensemble.
        raise damaged(
            folder,
            name,
            f"is missing: it holds the {LINEAR_BR} ensemble of this {model_type(config)} model "
            f'({CONFIG} has "ensemble": "{LINEAR_BR}")',
        )
    other = {MODEL: LINEAR, LINEAR: MODEL}[name]
    instead = f"; it holds {other} instead: is its {CONFIG} from another run?" if (folder / other).is_file() else ""
    raise damaged(folder, name, f"is missing (model type {model_type(config)}){instead}")


def model_type(config: dict) -> str:
    """The model type a run folder's `config.json` names (the first mlgen's folders, before the
    baselines, name none: they are cnn-rnn)."""
    return config.get("model_type", CNN_RNN)
