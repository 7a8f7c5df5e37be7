"""`mlgen train`: fit one model type on a labelled CSV or a bundled dataset.

`--workers N` trains on N worker processes on 127.0.0.1 (`tf.distribute.MultiWorkerMirroredStrategy`):
this process starts them, each the same command with its own `TF_CONFIG`, and stops
them all when training ends or one fails. Under a `TF_CONFIG` (a worker started so, or
one host of a real cluster), the chief alone writes the run folder and its logs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
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
    if os.environ.get("TF_CONFIG") and not _is_chief():
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


def _is_chief() -> bool:
    from mlgen.nn import distribute  # TensorFlow: only in a worker

    return distribute.is_chief()


# Seconds between checks on the workers `run_workers` started.
POLL_SECONDS = 0.2


def run_workers(args) -> int:
    """Trains on `args.workers` local processes on 127.0.0.1 and waits for them all.

    Worker 0, the chief, prints as a one-process run would; the others are silent unless
    they fail. When one fails, the others are stopped and its last error line is printed.
    """
    if args.workers < 2:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if os.environ.get("TF_CONFIG"):
        raise InputError(
            "--workers starts its own local cluster: unset TF_CONFIG, or drop --workers to be one of its workers"
        )
    if not registry.get(args.model).workers:
        raise InputError(f"--workers applies to the neural models; --model {args.model} trains in one process")
    argv = _without_workers(args.argv)
    ports = _free_ports(args.workers)
    workers, logs = [], []
    try:
        for index in range(args.workers):
            env = {**os.environ, "TF_CONFIG": json.dumps({
                "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                "task": {"type": "worker", "index": index},
            })}  # fmt: skip
            log = None if index == 0 else tempfile.TemporaryFile("w+")
            logs.append(log)
            command = [sys.executable, "-m", "mlgen", *argv, *([] if index == 0 else ["--verbose", "0"])]
            workers.append(subprocess.Popen(command, env=env, stdout=log or None, stderr=log or None, text=True))
        while True:
            codes = [worker.poll() for worker in workers]  # every one, each time
            if all(code is not None for code in codes) or any(codes):
                break  # all done, or one failed
            time.sleep(POLL_SECONDS)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    failed = [(i, w.returncode) for i, w in enumerate(workers) if w.returncode and i > 0]
    if workers[0].returncode == 0 and not failed:
        return 0
    for index, code in failed:
        logs[index].seek(0)
        lines = [line for line in logs[index].read().splitlines() if line.strip()]
        print(
            f"mlgen: error: worker {index} stopped (exit {code}): {lines[-1] if lines else 'no output'}",
            file=sys.stderr,
        )
    return workers[0].returncode or (failed[0][1] if failed else 1)


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
