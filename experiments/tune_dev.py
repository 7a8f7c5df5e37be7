"""Choose defaults on a dev split, never on test.

Trains one model per configuration (overrides of the `ModelConfig`/`TrainConfig`/
`BaselineConfig` defaults; `"model"` picks the model type, cnn-rnn by default) on the
training split, early-stops (or tunes thresholds) and scores on the dev split (the
bundled one, or a seeded `--dev-fraction` of train), and appends one JSON line per
run to `--out`. The test split is never read.

    python experiments/tune_dev.py --dataset reuters21578 \
        --configs '[{}, {"batch_size": 32}, {"model": "linear-br", "C": 2}]' --out experiments/results/tune.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from mlgen import datasets, registry
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig
from mlgen.data import train_dev_split
from mlgen.eval import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--configs", required=True, help="JSON list of override dicts")
    parser.add_argument("--out", required=True, help="JSON-lines file to append to")
    parser.add_argument("--beam-sizes", default="1,5", help="beam sizes to score the dev split with")
    parser.add_argument(
        "--dev-split",
        choices=("random", "tail"),
        default="random",
        help="without a bundled dev split: a seeded random 10%% of train, or its last 10%% in file order (for "
        "Reuters-21578, the latest stories: closer to the later test period)",
    )
    parser.add_argument("--save", metavar="DIR", help="also save each run's model to DIR/<line number of --configs>")
    args = parser.parse_args()
    train, dev = split(args.dataset, args.dev_split)
    for index, overrides in enumerate(json.loads(args.configs)):
        model_type = overrides.get("model", "cnn-rnn")
        configs = [
            cls(**{k: v for k, v in overrides.items() if k in {f.name for f in dataclasses.fields(cls)}})
            for cls in (ModelConfig, TrainConfig, BaselineConfig)
        ]
        started = time.perf_counter()
        predictor = registry.fit(model_type, train, dev, *configs, verbose=0)
        seconds = round(time.perf_counter() - started, 1)
        if args.save:
            predictor.save(f"{args.save}/{index}")
        beams = {}
        for beam_size in map(int, args.beam_sizes.split(",")) if model_type == "cnn-rnn" else ():
            predicted = predictor.predict(dev.texts, beam_size=beam_size)
            beams[beam_size] = round(metrics.evaluate(dev.label_sets, predicted, predictor.labels)["micro_f1"], 4)
        record = {
            "dataset": args.dataset,
            "dev_split": args.dev_split,
            "overrides": overrides,
            "dev": predictor.metrics["dev"],
            "dev_micro_f1_by_beam": beams,
            "best_epoch": predictor.metrics.get("best_epoch"),
            "epochs_run": predictor.metrics.get("epochs_run"),
            "seconds": seconds,
        }
        print(json.dumps(record), flush=True)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def split(dataset: str, dev_split: str = "random"):
    """`(train, dev)`: the bundled dev split, or 10% of train, seeded-random or the last in file order."""
    train = datasets.read(dataset, "train")
    if "dev" in datasets.splits(dataset):
        return train, datasets.read(dataset, "dev")
    if dev_split == "tail":
        cut = len(train) - len(train) // 10
        return train.subset(range(cut)), train.subset(range(cut, len(train)))
    return train_dev_split(train, TrainConfig().dev_fraction, seed=0)


if __name__ == "__main__":
    main()
