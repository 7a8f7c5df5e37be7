"""Scouting set decisions on saved models (issue 27): leads for the next rules, one seed, not a benchmark.

`independent`: samples-F1 of the expected-F1 set of independent labels over `predict_proba`'s
calibrated probabilities, against the model's fitted samples-F1 rule, on dev and test.
`rerank`: subset accuracy of a cnn-rnn's beam hypotheses reranked by `log P(h) + alpha *
sum_{j in h} logit(m_j)`, `m` the fitted marginal rule's mixed scores, for each alpha, against the
fitted subset-accuracy rule.

Both refit the model's decisions and calibration on dev first (as training does today), so a run
folder from an older mlgen scores with today's rules.

    .venv/bin/python experiments/scout27.py independent runs/reuters-cnn-rnn runs/reuters-cnn-br
    .venv/bin/python experiments/scout27.py rerank runs/reuters-cnn-rnn
"""

from __future__ import annotations

import argparse

import numpy as np

import mlgen
from mlgen import datasets
from mlgen.config import TrainConfig, from_dict
from mlgen.data import train_dev_split
from mlgen.decisions import ArrayOps, Marginal
from mlgen.decisions.fit import label_sets
from mlgen.eval import metrics

ALPHAS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


def refitted(run):
    """The model of `run` with its decisions and calibration refitted on its dev split; `(model, dev, test)`."""
    predictor = mlgen.load(run)
    name = predictor.config["data"]["train"].split(":")[0]
    train_config = from_dict(TrainConfig, predictor.config.get("train", {}))
    if "dev" in datasets.splits(name):
        dev = datasets.read(name, "dev")
    else:
        _, dev = train_dev_split(datasets.read(name, "train"), train_config.dev_fraction, seed=train_config.seed)
    predictor.calibrate(dev)
    predictor.fit_calibration(dev)
    return predictor, dev, datasets.read(name, "test")


def independent(run) -> None:
    predictor, dev, test = refitted(run)
    for split, data in (("dev", dev), ("test", test)):
        fitted = predictor.predict(data.texts, metric="samples-f1")
        probabilities = predictor.predict_proba(data.texts)
        ops = ArrayOps(network=probabilities, num_labels=predictor.vocab.num_labels)
        sets = label_sets(predictor.vocab, ops.independent_expected_f1(probabilities, allow_empty=False))
        score = {
            "fitted": metrics.evaluate(data.label_sets, fitted, predictor.labels)["samples_f1"],
            "independent": metrics.evaluate(data.label_sets, sets, predictor.labels)["samples_f1"],
        }
        print(f"{run} {split}: samples-F1 fitted rule {score['fitted']:.4f}, independent {score['independent']:.4f}")


def rerank(run, beam_size: int = 5) -> None:
    predictor, dev, test = refitted(run)
    micro = predictor.rule(metric="micro-f1")
    marginal = micro if isinstance(micro, Marginal) else predictor.decision.get(Marginal.name)
    weight = marginal.linear_weight
    shared = ("head",) * (predictor.model.label_head is not None) + ("margins",) * (predictor.linear is not None)
    for split, data in (("dev", dev), ("test", test)):
        wanted = (*shared, ("hypotheses", beam_size), ("marginals", marginal.beam_size))
        parts = predictor.graph.parts(data.texts, wanted, linear_weight=weight)
        ops = ArrayOps(
            margins=parts.get("margins"),
            head=parts.get("head"),
            marginals={(marginal.beam_size, weight): parts[("marginals", marginal.beam_size)]},
            num_labels=predictor.vocab.num_labels,
        )
        logits = ArrayOps.logit(marginal.scores(ops))
        hypotheses = parts[("hypotheses", beam_size)]
        ids, log_prob = np.asarray(hypotheses["label_ids"]), np.asarray(hypotheses["log_prob"], np.float64)
        held = np.take_along_axis(np.repeat(logits[:, None, :], ids.shape[1], axis=1), np.maximum(ids, 0), axis=2)
        bonus = np.where(ids >= 0, held, 0.0).sum(axis=2)  # (n_docs, beam): each hypothesis's summed logits
        gold = [frozenset(s) for s in data.label_sets]
        scores = []
        for alpha in ALPHAS:
            chosen = ids[np.arange(len(ids)), np.argmax(log_prob + alpha * bonus, axis=1)]
            sets = [frozenset(predictor.labels[j] for j in row if j >= 0) for row in chosen]
            scores.append(f"{alpha:g}: {np.mean([s == g for s, g in zip(sets, gold)]):.4f}")
        fitted = predictor.predict(data.texts, metric="subset-accuracy")
        accuracy = metrics.evaluate(data.label_sets, fitted, predictor.labels)["subset_accuracy"]
        print(f"{run} {split}: subset accuracy fitted rule {accuracy:.4f}; reranked by alpha {', '.join(scores)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("independent", "rerank"))
    parser.add_argument("runs", nargs="+", help="run folders trained on a bundled dataset")
    args = parser.parse_args()
    for run in args.runs:
        (independent if args.what == "independent" else rerank)(run)


if __name__ == "__main__":
    main()
