"""Scale benchmark (issue 18): streamed training, one against two workers, and sharded prediction.

    python experiments/scale.py train [--copies 1 4 16] [--epochs 1] [--repeats 1]
    python experiments/scale.py workers [--epochs 2]
    python experiments/scale.py predict --rows 1000000 [--model RUN] [--shards 4]

Every run is `python -m mlgen ...` in a fresh process, as a user runs it, under GNU
`/usr/bin/time` for its peak RSS (`%M`).

`train` writes a gzip CSV of Reuters-21578's training documents repeated ×K and shuffled
(seed 0; a text's copies share a row hash, so they all fall on one side of the dev
split) and trains cnn-rnn on it with `--stream`, for each K; at ×1 it also trains in
memory (`--no-stream`) for the docs/s comparison. Both cores; `--ensemble none
--decision mode` so that the runs time the network. Reports peak RSS, each epoch's
training docs/s (`train_docs_per_s`, dev scoring excluded) and wall seconds.

`workers` trains on the ×1 CSV in memory with one process, with `--workers 2`, and with
`--workers 2` at one intra-op and one inter-op thread per worker: docs/s, per-step time
(an epoch's seconds over its steps) and dev micro-F1.

`predict` writes a CSV of `--rows` Reuters-21578 test documents (resampled, seed 0) and
runs `mlgen predict` on it pinned to one core: once whole, then as `--shards` parts
(`--shard K/N`), and checks that the parts concatenate to the whole output. Without
`--model` it trains linear-br on Reuters' training split first (seconds).

Results go to `experiments/results/scale_{train,workers,predict}.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlgen import datasets

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
# What the training runs share: the network alone, decoded by its mode.
TRAIN_FLAGS = ["--ensemble", "none", "--decision", "mode", "--verbose", "2", "--patience", "5"]


def run(argv: list[str], rss_file: Path, cores: str | None = "1", env: dict | None = None) -> dict:
    """Runs `python -m mlgen ARGV` in a fresh process (pinned to `cores`, or free when None):
    its seconds and peak RSS (GNU time's `%M`; with `--workers`, the largest process's)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    pin = ["taskset", "-c", cores] if cores else []
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *pin, sys.executable, "-m", "mlgen"]
    started = time.perf_counter()
    subprocess.run([*command, *argv], check=True, env=env)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(int(rss_file.read_text().split()[-1]) / 1024, 1)}


def training_csv(path: Path, copies: int) -> int:
    """Reuters' training documents ×`copies`, shuffled (seed 0), as a gzip CSV; returns the rows."""
    train = datasets.load("reuters21578", "train")
    train = train.assign(labels=train["labels"].map("|".join))
    rows = np.random.default_rng(0).permutation(np.tile(np.arange(len(train)), copies))
    train.iloc[rows].to_csv(path, index=False)
    return len(rows)


def trained(folder: Path, timing: dict) -> dict:
    """A training run's figures from its run folder."""
    history = json.loads((folder / "history.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    return {
        **timing,
        "train_docs": config["data"]["train_docs"],
        "dev_docs": config["data"]["dev_docs"],
        "train_docs_per_s": [round(v, 1) for v in history["train_docs_per_s"]],
        "dev_micro_f1": round(metrics["dev"]["micro_f1"], 4),
    }


def train_part(args, tmp: Path) -> dict:
    results = {"command": " ".join(sys.argv), "epochs": args.epochs, "runs": {}}
    for copies in args.copies:
        source = tmp / f"train-x{copies}.csv.gz"
        rows = training_csv(source, copies)
        # At x1, streamed and in-memory runs alternate, `--repeats` pairs, so that drifts in the
        # machine's speed fall on both.
        modes = ["--stream", "--no-stream"] * args.repeats if copies == 1 else ["--stream"]
        for i, mode in enumerate(modes):
            out = tmp / f"run-x{copies}{mode}"
            argv = ["train", "--train", str(source), "--out", str(out), "--epochs", str(args.epochs), mode]
            timing = run([*argv, *TRAIN_FLAGS], tmp / "rss.txt", cores=None)
            name = f"x{copies} {'streamed' if mode == '--stream' else 'in memory'}"
            if copies == 1 and args.repeats > 1:
                name += f" #{i // 2 + 1}"
            results["runs"][name] = {"rows": rows, "input_mb": round(source.stat().st_size / 2**20, 1)}
            results["runs"][name].update(trained(out, timing))
            print(name, results["runs"][name], flush=True)
            shutil.rmtree(out)
    return results


def workers_part(args, tmp: Path) -> dict:
    source = tmp / "train-x1.csv.gz"
    training_csv(source, 1)
    results = {"command": " ".join(sys.argv), "epochs": args.epochs, "runs": {}}
    one_thread = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    for name, extra, env in (
        ("1 process", [], None),
        ("2 workers", ["--workers", "2"], None),
        ("2 workers, one intra-op and one inter-op thread each", ["--workers", "2"], one_thread),
    ):
        out = tmp / f"run-{len(results['runs'])}"
        argv = ["train", "--train", str(source), "--out", str(out), "--epochs", str(args.epochs), "--no-stream"]
        timing = run([*argv, *extra, *TRAIN_FLAGS], tmp / "rss.txt", cores=None, env=env)
        row = trained(out, timing)
        steps = -(-row["train_docs"] // 32)  # the default --batch-size
        row["step_ms"] = [round(1000 * row["train_docs"] / v / steps, 1) for v in row["train_docs_per_s"]]
        results["runs"][name] = row
        print(name, row, flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["train", "workers", "predict"])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--epochs", type=int, default=None, help="train: 1, workers: 2")
    parser.add_argument("--repeats", type=int, default=1, help="train: pairs of x1 runs, streamed and in memory")
    parser.add_argument("--results", help="train, workers: the results file's name (default: scale_PART.json)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--model", help="a run folder (default: linear-br trained here)")
    args = parser.parse_args()
    if args.part in ("train", "workers"):
        args.epochs = args.epochs or (1 if args.part == "train" else 2)
        with tempfile.TemporaryDirectory() as tmp:
            results = (train_part if args.part == "train" else workers_part)(args, Path(tmp))
        name = args.results or f"scale_{args.part}.json"
        (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = datasets.load("reuters21578", "test")[["text"]]
        rows = np.random.default_rng(0).integers(0, len(texts), args.rows)
        source = tmp / "input.csv"
        texts.iloc[rows].to_csv(source, index=False)
        model = args.model
        if model is None:
            train = datasets.load("reuters21578", "train")
            train.assign(labels=train["labels"].map("|".join)).to_csv(tmp / "train.csv", index=False)
            model = tmp / "linear"
            train_argv = ["train", "--model", "linear-br", "--train", str(tmp / "train.csv"), "--out", str(model)]
            subprocess.run([sys.executable, "-m", "mlgen", *train_argv], check=True)
        base = ["predict", "--model", str(model), "--input", str(source)]
        results = {"rows": args.rows, "input_mb": round(source.stat().st_size / 2**20, 1), "model": str(args.model)}
        rss = tmp / "rss.txt"
        results["whole"] = run([*base, "--output", str(tmp / "whole.csv")], rss)
        parts = [tmp / f"part-{k}.csv" for k in range(1, args.shards + 1)]
        for k, part in enumerate(parts, 1):
            results[f"shard {k}/{args.shards}"] = run(
                [*base, "--output", str(part), "--shard", f"{k}/{args.shards}"], rss
            )
        joined = b"".join(part.read_bytes() for part in parts)
        results["parts_concatenate_to_whole"] = joined == (tmp / "whole.csv").read_bytes()
    for name, row in results.items():
        if isinstance(row, dict):
            docs = args.rows / args.shards if name.startswith("shard") else args.rows
            row["docs_per_s"] = round(docs / row["seconds"])
    (RESULTS / "scale_predict.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0 if results["parts_concatenate_to_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
