"""The exception types users see, each printed by the CLI as one line.

Everything that can go wrong because of what a user handed us (a file, a column, a
row, an option, a run folder) raises `InputError` with a one-line message that says
what is wrong, where, and how to fix it. The CLI prints it without a traceback and
exits with 2.

A message names a setting as the door the user came through does (`option`): a CLI flag
(`--beam-size 0`), a Python parameter (`beam_size=0`) or a key of a run folder's file
(`"beam_size": 0`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json


class InputError(ValueError):
    """Bad user input: a file, a column, a row or an option. The message is for people."""


class TrainingDiverged(InputError):
    """The training loss became NaN or infinite; nothing was saved. Usually the learning
    rate (or the data's scale) is to blame, which is what the message suggests."""


def format_rows(rows, limit=5):
    """`[3, 8, 9, 12, 40, 41]` -> `"3, 8, 9, 12, 40 and 1 more"` (data rows count from 1)."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    if len(rows) > limit:
        shown += f" and {len(rows) - limit} more"
    return shown


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# The door a user came through, which says how messages name a setting: a CLI flag
# (`--beam-size 0`), a Python parameter (`beam_size=0`) or a key of a run folder's file
# (`"beam_size": 0`). Python's unless a caller says otherwise: the CLI's `main` runs its
# commands within `names_for("cli")`.
_DOOR = contextvars.ContextVar("mlgen_door", default="python")
_UNSET = object()


@contextlib.contextmanager
def names_for(door: str):
    """Within the block, messages name settings as `door` does: `"cli"`, `"python"` or `"file"`."""
    if door not in ("cli", "python", "file"):
        raise ValueError(f"unknown door {door!r}")
    token = _DOOR.set(door)
    try:
        yield
    finally:
        _DOOR.reset(token)


def option(name: str, value=_UNSET) -> str:
    """How the current door names the setting `name` (a Python identifier), with `value` if
    given: `--beam-size` / `--beam-size 0` (CLI), `beam_size` / `beam_size=0` (Python),
    `"beam_size"` / `"beam_size": 0` (a file)."""
    door = _DOOR.get()
    if door == "python":
        return name if value is _UNSET else f"{name}={value!r}"
    if door == "file":
        if value is _UNSET:
            return f'"{name}"'
        return f'"{name}": {as_json(value)}'
    flag = "--" + name.replace("_", "-")
    if value is _UNSET or value is True:  # a switch is its flag alone
        return flag
    shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    return f"{flag} {shown}"


def as_json(value) -> str:
    """`value` as a file holds it (its JSON text), or its `repr` when JSON cannot hold it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def bad_value(name: str, value, problem: str) -> InputError:
    """The InputError for setting `name` holding `value`, which `problem` ("must be at least 1")
    says is wrong, named as the current door names it (`option`)."""
    if _DOOR.get() == "cli":
        return InputError(f"{option(name)} {problem}, got {value!r}")
    return InputError(f"{option(name, value)}: {problem}")
