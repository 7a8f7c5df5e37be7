"""Choose defaults on a dev split, never on test.

Trains one model per configuration (overrides of the `ModelConfig`/`TrainConfig`
defaults) on the training split, early-stops and scores on the dev split (the
bundled one, or a seeded `--dev-fraction` of train), and appends one JSON line per
run to `--out`. The test split is never read.

    python experiments/tune_dev.py --dataset reuters21578 \
        --configs '[{}, {"batch_size": 32}, {"embedding_dim": 128}]' --out experiments/results/tune.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from mlgen import datasets, metrics
from mlgen.config import ModelConfig, TrainConfig
from mlgen.data import train_dev_split
from mlgen.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--configs", required=True, help="JSON list of override dicts")
    parser.add_argument("--out", required=True, help="JSON-lines file to append to")
    parser.add_argument("--beam-sizes", default="1,5", help="beam sizes to score the dev split with")
    args = parser.parse_args()
    train = datasets.read(args.dataset, "train")
    if "dev" in datasets.splits(args.dataset):
        dev = datasets.read(args.dataset, "dev")
    else:
        train, dev = train_dev_split(train, TrainConfig().dev_fraction, seed=0)
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for overrides in json.loads(args.configs):
        model_config = ModelConfig(**{k: v for k, v in overrides.items() if k in model_fields})
        train_config = TrainConfig(**{k: v for k, v in overrides.items() if k not in model_fields})
        started = time.perf_counter()
        predictor = fit(train, dev, model_config, train_config, verbose=0)
        seconds = round(time.perf_counter() - started, 1)
        beams = {}
        for beam_size in map(int, args.beam_sizes.split(",")):
            predicted = predictor.predict(dev.texts, beam_size=beam_size)
            beams[beam_size] = round(metrics.evaluate(dev.label_sets, predicted, predictor.labels)["micro_f1"], 4)
        record = {
            "dataset": args.dataset,
            "overrides": overrides,
            "dev": predictor.metrics["dev"],
            "dev_micro_f1_by_beam": beams,
            "best_epoch": predictor.metrics["best_epoch"],
            "epochs_run": predictor.metrics["epochs_run"],
            "seconds": seconds,
        }
        print(json.dumps(record), flush=True)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
