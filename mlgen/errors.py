"""The one exception type users see for bad input.

Everything that can go wrong because of what a user handed us (a file, a column, a
row, an option) raises `InputError` with a one-line message that says what is wrong,
where, and how to fix it. The CLI prints it without a traceback and exits with 2.
"""


class InputError(ValueError):
    """Bad user input: a file, a column, a row or an option. The message is for people."""


def format_rows(rows, limit=5):
    """`[3, 8, 9, 12, 40, 41]` -> `"3, 8, 9, 12, 40 and 1 more"` (data rows count from 1)."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:limit])
    if len(rows) > limit:
        shown += f" and {len(rows) - limit} more"
    return shown
