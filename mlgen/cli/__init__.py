"""`mlgen train | evaluate | predict | compare | explain | export | info`: the parser here, one module per command.

Commands parse and report only; the work is the library's. TensorFlow is imported by the
commands that need it, so `mlgen --help` and bad input errors come back fast, and its C++
start-up logging is quiet unless `TF_CPP_MIN_LOG_LEVEL` is set (`TF_CPP_MIN_LOG_LEVEL=0
mlgen ...` shows it). Any `InputError` prints as one line, `mlgen: error: ...`, with exit
status 2 and no traceback. SIGTERM ends a command as Ctrl-C does: its clean-up runs (staging
folders, temporary records), it prints `mlgen: terminated` and exits 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from mlgen.cli import compare, evaluate, explain, export, info, predict, train
from mlgen.errors import InputError, names_for
from mlgen.version import __version__

COMMANDS = (train, evaluate, predict, explain, compare, export, info)
# TensorFlow's C++ log level for the commands: 3 hides its start-up INFO and WARNING lines
# and the ERROR-level "oneDNN supports DT_BOOL only on platforms with AVX-512" notice, which
# reads like a failure and is none; every failure mlgen acts on is a Python exception.
TF_LOG_LEVEL = "3"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlgen",
        description="Multi-label text classification as label-sequence generation (CNN encoder, RNN decoder).",
        epilog="TensorFlow's start-up logging is off; TF_CPP_MIN_LOG_LEVEL=0 turns it back on.",
    )
    parser.add_argument("--version", action="version", version=f"mlgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Runs one command; `argv` items may be paths. Returns the exit status."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    args.argv = argv  # what `train --workers` starts each worker with
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)  # before TensorFlow is imported
    # SIGTERM raises `Terminated` in the main thread (where signal handlers can be set).
    handles_sigterm = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_sigterm else None
    try:
        with names_for("cli"):  # messages name settings by their flags
            return args.func(args)
    except InputError as err:
        print(f"mlgen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlgen: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("mlgen: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if handles_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that clean-up runs as on Ctrl-C."""


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated
