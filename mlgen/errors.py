"""The exception types users see, each printed by the CLI as one line.

Everything that can go wrong because of what a user handed us (a file, a column, a
row, an option, a run folder) raises `InputError` with a one-line message that says
what is wrong, where, and how to fix it. The CLI prints it without a traceback and
exits with 2.
"""


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
