"""Progress of long work on standard error: items done, items per second and time left.

On a terminal one line is redrawn in place, at most `REDRAW_SECONDS` apart; in a log or
a pipe a line is printed every `LOG_SECONDS`. Work that ends within the first
`QUIET_SECONDS` prints nothing, so small inputs stay quiet. stdlib only.
"""

from __future__ import annotations

import sys
import time

REDRAW_SECONDS = 0.5
LOG_SECONDS = 10.0
QUIET_SECONDS = 2.0


class Progress:
    """Counts `done` of `total` items and reports as it goes.

    Args:
        what: what is counted, e.g. `"rows"`.
        total: how many there are (None: unknown, no time left is shown).
        enabled: False reports nothing (`--verbose 0`).
        stream: where to write (standard error).
        clock: seconds, for tests.

    Example:
        >>> progress = Progress("rows", total=1_000_000)
        >>> for chunk in chunks:
        ...     progress.update(len(chunk))
        >>> progress.close()
    """

    def __init__(self, what: str, total: int | None = None, enabled: bool = True, stream=None, clock=time.monotonic):
        self.what, self.total, self.enabled = what, total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.done = 0
        self.started = self.clock()
        self._shown_at = None  # when a report was last written
        self._terminal = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, count: int) -> None:
        """`count` more items are done."""
        self.done += count
        now = self.clock()
        if not self.enabled or now - self.started < QUIET_SECONDS:
            return
        every = REDRAW_SECONDS if self._terminal else LOG_SECONDS
        if self._shown_at is None or now - self._shown_at >= every:
            self._show(now)

    def close(self) -> None:
        """Writes the final report (when any was written) and ends the terminal line."""
        if self.enabled and self._shown_at is not None:
            self._show(self.clock())
            if self._terminal:
                self.stream.write("\n")
                self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """`12,000 of 50,000 rows (24%), 1,534 rows/s, 25 s left`; for items slower than one a
        second, `2 of 9 runs (22%), 4 min 5 s each, 28 min 35 s left`."""
        elapsed = max((self.clock() if now is None else now) - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            text = f"{self.done:,} of {self.total:,} {self.what} ({100 * self.done / self.total:.0f}%)"
        else:
            text = f"{self.done:,} {self.what}"
        text += f", {rate:,.0f} {self.what}/s" if rate >= 1 or not self.done else f", {format_seconds(1 / rate)} each"
        if self.total and rate > 0 and self.done < self.total:
            text += f", {format_seconds((self.total - self.done) / rate)} left"
        return text

    def _show(self, now: float) -> None:
        self._shown_at = now
        if self._terminal:
            self.stream.write("\r\033[K" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()


def format_seconds(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `2 h 7 min`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
