"""Scale benchmark (issue 18). This first part: `mlgen predict` on a large CSV, whole and in shards.

    python experiments/scale.py predict --rows 1000000 [--model RUN] [--shards 4]

Writes a CSV of `--rows` Reuters-21578 test documents (resampled, seed 0) and runs
`mlgen predict` on it as a user would, each run in a fresh process pinned to one core:
once whole, then as `--shards` parts (`--shard K/N`). Reports each run's seconds, docs/s
and peak RSS (GNU `/usr/bin/time`), and checks that the parts concatenate to the
whole output. Without `--model` it trains linear-br on Reuters' training split first
(seconds); pass a cnn-rnn run folder to time the label-sequence model (about 1,000 docs/s
on one core, so use fewer rows). The training parts of the issue (streamed input, 1 and 2
workers) come with streaming training.

Results go to `experiments/results/scale_predict.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlgen import datasets

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "scale_predict.json"


def run(argv: list[str], rss_file: Path) -> dict:
    """Runs `python -m mlgen ARGV` in a fresh process on core 1: its seconds and peak RSS
    (GNU time's `%M`)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), "taskset", "-c", "1", sys.executable, "-m", "mlgen"]
    started = time.perf_counter()
    subprocess.run([*command, *argv], check=True, env=env)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(int(rss_file.read_text().split()[-1]) / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["predict"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--model", help="a run folder (default: linear-br trained here)")
    args = parser.parse_args()
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
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0 if results["parts_concatenate_to_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
