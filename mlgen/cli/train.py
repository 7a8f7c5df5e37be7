"""`mlgen train`: fit one model type on a labelled CSV or a bundled dataset.

`--workers N` trains on N worker processes on 127.0.0.1 (`tf.distribute.MultiWorkerMirroredStrategy`):
this process starts them, each the same command with its own `TF_CONFIG`, and stops
them all when training ends or one fails. Under a `TF_CONFIG` (a worker started so, or
one host of a real cluster), the chief alone writes the run folder and its logs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig
from mlgen.data import datasets, stream
from mlgen.errors import InputError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model on a labelled CSV or a bundled dataset",
        description="Train on --train CSV (dev: --dev CSV, or --dev-fraction of train) or on a bundled --dataset "
        f"(default: {datasets.DEFAULT}). Writes the run folder --out atomically.",
    )
    common.add_data_source(parser)
    parser.add_argument(
        "--train",
        metavar="CSV",
        help="labelled training file (.csv, .tsv, .jsonl, optionally .gz), or a quoted glob of them "
        "('shards/*.csv.gz')",
    )
    parser.add_argument("--dev", metavar="CSV", help="labelled dev file for early stopping")
    parser.add_argument(
        "--model",
        default=registry.DEFAULT,
        choices=list(registry.MODEL_TYPES),
        help="; ".join(f"{name}: {entry.help}" for name, entry in registry.MODEL_TYPES.items())
        + f" (default: {registry.DEFAULT})",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder to write (replaced atomically)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train cnn-rnn or cnn-br on N local worker processes (tf.distribute.MultiWorkerMirroredStrategy); "
        "on a cluster, give each host's process its TF_CONFIG instead (default: 1)",
    )
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        help="cnn-rnn, cnn-br: read --train in chunks, never all rows in memory; dev is then "
        "--dev, or the rows whose hash of their text falls under --dev-fraction (at most "
        f"{stream.MAX_DEV_DOCS:,} documents) (default: on when the --train files pass "
        f"{stream.STREAM_ABOVE_BYTES // 2**20} MiB on disk)",
    )
    common.add_verbose_argument(parser, default=None, default_help="1 on a terminal, else 2")
    common.add_config_arguments(parser, "binary-relevance baselines (--model cnn-br, linear-br) and the ensemble")
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def check_flags(args) -> None:
    """Refuses hyperparameter flags that the chosen --model would ignore (its `registry` entry's fields)."""
    given = [
        f.name
        for cls in (ModelConfig, TrainConfig, BaselineConfig)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    ]
    entry = registry.get(args.model)
    ensemble = args.ensemble or ModelConfig.ensemble
    used = {name for names in entry.fields(ensemble).values() for name in names}
    by = f"--model {args.model}" + (" --ensemble none" if entry.ensemble and ensemble == "none" else "")
    unused = [name for name in given if name not in used]
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise InputError(f"{flags}: not used by {by}; see `mlgen train --help`")


def run(args) -> int:
    check_flags(args)
    configs = common.configs(args)
    artifacts.check_out_dir(args.out, inputs=(args.train, args.dev))
    if args.workers != 1:
        return run_workers(args)
    if os.environ.get("TF_CONFIG"):
        from mlgen.nn import distribute  # TensorFlow: only in a worker

        if os.environ.get(PARENT_VARIABLE, "").isdigit():
            _die_with_parent(int(os.environ[PARENT_VARIABLE]))
        distribute.cluster()  # a malformed TF_CONFIG is refused here
        if registry.get(args.model).workers:
            distribute.strategy()  # waits, bounded, for the other workers
        if not distribute.is_chief():
            train, dev = common.training_data(args, configs.train, args.stream)
            registry.fit(args.model, train, dev, configs.model, configs.train, configs.baseline, verbose=0)
            return 0  # a worker that is not the chief writes nothing
    train, dev = common.training_data(args, configs.train, args.stream)
    with artifacts.atomic_dir(args.out) as staging:
        predictor = registry.fit(
            args.model,
            train,
            dev,
            configs.model,
            configs.train,
            configs.baseline,
            log_dir=staging / artifacts.LOGS,
            # A progress bar on a terminal; one line per epoch in logs and pipes.
            verbose=args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2),
        )
        if args.train:
            predictor.config["data"]["csv_format"] = common.csv_format(args).to_dict()
        predictor.write(staging)
    m = predictor.metrics
    epochs = f"{m['epochs_run']} epochs, kept epoch {m['best_epoch']}; " if "epochs_run" in m else ""
    print(
        f"trained {args.model} in {m['train_seconds']:.0f} s; {epochs}"
        f"dev micro-F1 {m['dev'].get('micro_f1', float('nan')):.4f}; saved {args.out}"
    )
    return 0


# Seconds between checks on the workers `run_workers` started.
POLL_SECONDS = 0.2
# Seconds the surviving workers get, after SIGTERM, to clean up (staging folders, temporary
# records) before they are killed.
STOP_GRACE_SECONDS = 10.0
# What one worker needs: a whole TensorFlow process (about 1 GiB resident for the tiny
# network, more for real ones) and a CPU core.
WORKER_MEMORY_GIB = 1.0
# Set in the workers `run_workers` starts: the pid of the process they must not outlive.
PARENT_VARIABLE = "MLGEN_PARENT_PID"


def run_workers(args) -> int:
    """Trains on `args.workers` local processes on 127.0.0.1 and waits for them all.

    Worker 0, the chief, prints as a one-process run would; the others are silent unless
    they fail. When one fails, the others are stopped (SIGTERM, so that they clean up;
    SIGKILL `STOP_GRACE_SECONDS` later) and the one that failed first is named, with how it
    ended. The workers die with this process however it ends (a parent-death signal, and
    a watch on their parent in each worker: `_die_with_parent`).
    """
    if args.workers < 2:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if os.environ.get("TF_CONFIG"):
        raise InputError(
            "--workers starts its own local cluster: unset TF_CONFIG, or drop --workers to be one of its workers"
        )
    if not registry.get(args.model).workers:
        raise InputError(f"--workers applies to the neural models; --model {args.model} trains in one process")
    _check_capacity(args.workers)
    argv = _without_workers(args.argv)
    ports = _free_ports(args.workers)
    workers, logs, chief_errors = [], [], []
    first = None  # (index, returncode) of the worker that failed first
    stopped = False
    try:
        for index in range(args.workers):
            env = {**os.environ, PARENT_VARIABLE: str(os.getpid()), "TF_CONFIG": json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                "task": {"type": "worker", "index": index},
            })}  # fmt: skip
            log = None if index == 0 else tempfile.TemporaryFile("w+")
            logs.append(log)
            command = [sys.executable, "-m", "mlgen", *argv, *([] if index == 0 else ["--verbose", "0"])]
            workers.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=log or None,
                    stderr=log or subprocess.PIPE,
                    text=True,
                    preexec_fn=_parent_death_signal(),
                )
            )
            if index == 0:  # the chief's errors are held back for the one line that names it
                _forward(workers[0].stderr, chief_errors)
        while first is None:
            codes = [worker.poll() for worker in workers]  # every one, each time
            failed = [(i, code) for i, code in enumerate(codes) if code]
            if failed:  # killed by a signal first: the others' failures most likely follow from it
                first = min(failed, key=lambda failure: (failure[1] > 0, failure[0]))
            elif all(code is not None for code in codes):
                break
            else:
                time.sleep(POLL_SECONDS)
    finally:
        stopped = _stop(workers)
        for thread in _FORWARDERS:
            thread.join(timeout=5)
        _FORWARDERS.clear()
    if first is None:
        return 0
    index, code = first
    name = "worker 0 (the chief)" if index == 0 else f"worker {index}"
    how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
    cause = _cause(chief_errors if index == 0 else _lines(logs[index]))
    raise InputError(
        f"{name} {how}{': ' + cause if cause else ''}{'; the other workers were stopped' if stopped else ''}"
    )


def _check_capacity(count: int) -> None:
    """Refuses more workers than this machine has CPU cores, or memory for (`WORKER_MEMORY_GIB` each)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    available = _available_memory_gib()
    fits = min(cores, int(available // WORKER_MEMORY_GIB) if available is not None else cores)
    if count > fits:
        memory = f" and {available:.1f} GiB of memory available" if available is not None else ""
        raise InputError(
            f"--workers {count}: this machine has {cores} CPU core{'s' * (cores != 1)}{memory}, room for at most "
            f"{fits} worker{'s' * (fits != 1)} (each is a TensorFlow process that needs a core and about "
            f"{WORKER_MEMORY_GIB:g} GiB)"
        )


def _available_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def _parent_death_signal():
    """A `preexec_fn` that has Linux send the worker SIGTERM when this process ends (None elsewhere)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent ended before the call: no signal will come
            os._exit(1)

    return preexec


def _die_with_parent(parent: int) -> None:
    """In a worker: a thread that ends this process when `parent` is gone. The parent-death
    signal (SIGTERM) normally ends it first, cleanly; this SIGTERMs it again and, when it
    is still here `STOP_GRACE_SECONDS` later (stuck in TensorFlow), kills it."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="mlgen-parent-watch", daemon=True).start()


def _stop(workers: list[subprocess.Popen]) -> bool:
    """Stops the workers still running: SIGTERM, then SIGKILL after `STOP_GRACE_SECONDS`.
    Waits for all; returns whether any had to be stopped."""
    running = [worker for worker in workers if worker.poll() is None]
    for worker in running:
        with contextlib.suppress(ProcessLookupError):
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in running:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
    for worker in workers:
        worker.wait()
    return bool(running)


_FORWARDERS: list[threading.Thread] = []


def _forward(stream, errors: list[str]) -> None:
    """Copies the chief's standard error to ours as it comes, except the lines `HELD_BACK`,
    which are kept in `errors` (a failure is reported once, naming the worker)."""

    def copy():
        with stream:
            for line in stream:
                if line.startswith(HELD_BACK):
                    errors.append(line)
                else:
                    sys.stderr.write(line)
                    sys.stderr.flush()

    thread = threading.Thread(target=copy, name="mlgen-chief-stderr", daemon=True)
    thread.start()
    _FORWARDERS.append(thread)


ERROR_PREFIX = "mlgen: error: "
# The chief's lines that this process prints in its own words: its error, and how it ended
# when stopped (this process prints "interrupted" or "terminated" itself when that is why).
HELD_BACK = (ERROR_PREFIX, "mlgen: interrupted", "mlgen: terminated")


def _lines(log) -> list[str]:
    log.seek(0)
    return log.read().splitlines()


def _cause(lines: list[str]) -> str:
    """What a worker said about its failure: its last `mlgen: error:` line, or the last line
    of a traceback; "" when it said neither (a worker killed by a signal says nothing)."""
    lines = [line.rstrip() for line in lines if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]
    return ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _without_workers(argv: list[str]) -> list[str]:
    """`argv` without `--workers N` / `--workers=N`."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--workers":
            skip = True
        elif not token.startswith("--workers="):
            out.append(token)
    return out


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
