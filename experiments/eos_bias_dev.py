"""Does tuning cnn-rnn's EOS bias on dev help on documents it was not tuned on?

Trains the default cnn-rnn once (EOS bias tuning off), decodes the dev split with every
bias of `SequencePredictor.EOS_BIASES`, and cross-checks in two folds: each half of dev
gets the bias that scored best on the *other* half. Prints dev micro-F1 without a
bias, with the cross-fitted bias (an honest estimate), and per bias. Test is never read.

    .venv/bin/python experiments/eos_bias_dev.py --dataset reuters21578
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from mlgen import datasets, registry
from mlgen.config import ModelConfig, TrainConfig
from mlgen.data import train_dev_split
from mlgen.eval import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = datasets.read(args.dataset, "train")
    if "dev" in datasets.splits(args.dataset):
        dev = datasets.read(args.dataset, "dev")
    else:
        train, dev = train_dev_split(train, TrainConfig().dev_fraction, seed=args.seed)
    predictor = registry.fit(
        "cnn-rnn", train, dev, ModelConfig(tune_eos_bias=False), TrainConfig(seed=args.seed), verbose=0
    )
    predicted = {}
    for bias in predictor.EOS_BIASES:
        predictor.model.eos_bias.assign(bias)
        predicted[bias] = predictor.predict(dev.texts)
    halves = np.random.default_rng(args.seed).permutation(len(dev)) % 2

    def f1(bias, half=None):
        rows = range(len(dev)) if half is None else np.flatnonzero(halves == half)
        gold = [dev.label_sets[i] for i in rows]
        return metrics.evaluate(gold, [predicted[bias][i] for i in rows], predictor.labels)["micro_f1"]

    chosen = {half: max(predictor.EOS_BIASES, key=lambda b: f1(b, 1 - half)) for half in (0, 1)}
    cross = [predicted[chosen[halves[i]]][i] for i in range(len(dev))]
    record = {
        "dataset": args.dataset,
        "seed": args.seed,
        "dev_micro_f1_no_bias": f1(0.0),
        "dev_micro_f1_cross_fitted": metrics.evaluate(dev.label_sets, cross, predictor.labels)["micro_f1"],
        "chosen_bias_per_half": [chosen[0], chosen[1]],
        "dev_micro_f1_by_bias": {str(b): f1(b) for b in predictor.EOS_BIASES},
        "mean_labels_by_bias": {str(b): float(np.mean([len(p) for p in predicted[b]])) for b in predictor.EOS_BIASES},
        "gold_mean_labels": float(np.mean([len(s) for s in dev.label_sets])),
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
