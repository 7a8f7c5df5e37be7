"""Which calibration turns label scores into probabilities best: each method fitted on dev, scored on test.

For each run folder given (trained on a bundled dataset, its dev split recovered as training
chose it) and, with `--linear-br`, a linear-br fitted on the same data, every method of
`mlgen.decisions.calibration.METHODS` is fitted on the dev documents' label scores and scored
on the test split's: the expected calibration error (15 bins, every (document, label) pair), the
Brier score and the log-loss per pair, against the scores as they are; and the method that
`calibration.fit` (what training runs) chooses, with the seconds it takes.

    .venv/bin/python experiments/calibration.py runs/reuters-cnn-rnn runs/reuters-cnn-br --linear-br \
        --json experiments/results/calibration_reuters21578.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import mlgen
from mlgen import datasets, registry
from mlgen.config import TrainConfig, from_dict
from mlgen.data import train_dev_split
from mlgen.decisions import ArrayOps, calibration
from mlgen.eval import metrics


def splits(predictor):
    """`(train, dev, test)` of the bundled dataset `predictor` was trained on, dev as training split it."""
    name = predictor.config["data"]["train"].split(":")[0]
    train_config = from_dict(TrainConfig, predictor.config.get("train", {}))
    train = datasets.read(name, "train")
    if "dev" in datasets.splits(name):
        dev = datasets.read(name, "dev")
    else:
        train, dev = train_dev_split(train, train_config.dev_fraction, seed=train_config.seed)
    return name, train, dev, datasets.read(name, "test")


def scored(probabilities, truth, gold, labels) -> dict:
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return {
        "ece": metrics.calibration(gold, probabilities, labels)[0],
        "brier": float(np.mean((p - truth) ** 2)),
        "log_loss": float(-np.mean(np.where(truth, np.log(p), np.log1p(-p)))),
    }


def measure(predictor, dev, test) -> dict:
    """Every method's test scores, fitted on `dev`'s label scores."""
    dev_scores, test_scores = predictor.label_scores(dev.texts), predictor.label_scores(test.texts)
    dev_truth = predictor.vocab.to_multi_hot(predictor.vocab.drop_unknown(dev.label_sets)) > 0
    test_truth = predictor.vocab.to_multi_hot(predictor.vocab.drop_unknown(test.label_sets)) > 0
    margins = predictor.score_range is None
    row = {}
    for method in calibration.METHODS:
        if margins and method == "none":
            continue
        fitted = calibration.fit(dev_scores, dev_truth, margins, methods=(method,))
        row[method] = scored(fitted.apply(ArrayOps, test_scores), test_truth, test.label_sets, predictor.labels)
    started = time.perf_counter()
    row["chosen"] = calibration.fit(dev_scores, dev_truth, margins).method
    row["fit_seconds"] = round(time.perf_counter() - started, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders trained on one bundled dataset")
    parser.add_argument("--linear-br", action="store_true", help="also fit a default linear-br on the same data")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    predictors = {run: mlgen.load(run) for run in args.runs}
    name, train, dev, test = splits(next(iter(predictors.values())))
    if args.linear_br:
        predictors["linear-br"] = registry.fit("linear-br", train, dev, verbose=0)
    results = {"dataset": name}
    for run, predictor in predictors.items():
        results[run] = {"model_type": predictor.model_type, **measure(predictor, dev, test)}
        print(run, json.dumps(results[run]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
