"""Progress reports: quiet for short work, a line every few seconds in logs, redrawn on a terminal."""

import io

from mlgen.progress import LOG_SECONDS, QUIET_SECONDS, Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_line_every_few_seconds_with_rate_and_time_left():
    clock, stream = Clock(), io.StringIO()
    progress = Progress("rows", total=1000, stream=stream, clock=clock)
    clock.now = QUIET_SECONDS / 2
    progress.update(50)
    assert stream.getvalue() == ""  # short work stays quiet
    for _ in range(3):
        clock.now += LOG_SECONDS / 2
        progress.update(100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first report, then one LOG_SECONDS later
    assert lines[0] == "150 of 1,000 rows (15%), 25 rows/s, 34 s left"
    progress.close()
    assert stream.getvalue().splitlines()[-1] == "350 of 1,000 rows (35%), 22 rows/s, 30 s left"


def test_a_terminal_line_is_redrawn_and_ended_and_disabled_progress_is_silent():
    clock, terminal = Clock(), Terminal()
    progress = Progress("texts", stream=terminal, clock=clock)
    for _ in range(3):
        clock.now += QUIET_SECONDS
        progress.update(10)
    progress.close()
    assert terminal.getvalue().count("\r\033[K") == 4 and terminal.getvalue().endswith("30 texts, 5 texts/s\n")
    quiet = Progress("rows", 10, enabled=False, stream=io.StringIO(), clock=clock)
    clock.now += 100
    quiet.update(5)
    quiet.close()
    assert quiet.stream.getvalue() == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 65, 7260)] == ["4 s", "1 min 5 s", "2 h 1 min"]


def test_slow_items_show_the_time_each_takes():
    clock = Clock()
    progress = Progress("runs", total=4, stream=io.StringIO(), clock=clock)
    clock.now = 240.0
    progress.update(1)
    assert progress.line() == "1 of 4 runs (25%), 4 min 0 s each, 12 min 0 s left"
