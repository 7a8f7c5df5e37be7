"""Ablations of cnn-rnn's options, each against a base, over seeds.

Two suites (`--suite`): `decoder`, the decoder variants against a fixed base (`BASE`,
sessions 2-7), and `beat-br`, issue 16's options against today's defaults
(`BEAT_BR`, with `--decision mode --ensemble none` so that each plain row is the network's most probable
sequence). In `beat-br` every run but those that set the decision themselves also fits the marginal
decision on dev (`SequencePredictor.fit_decision`, the rule `--decision auto` keeps) and adds a
second record, `<variant> + decision auto`, scored with the rule it chose (its dev
micro-F1 is the cross-fitted one when it chose the marginal rule). The `linear-br ensemble` row trains
the default network with today's defaults (`--ensemble linear-br --decision auto`); its dev scores are
those of the rule chosen, cross-fitted like the others.

Every run trains on the training split, early-stops on the dev split (the bundled one,
or each seed's `--dev-fraction` of train) and is scored on dev (what defaults are
chosen on) and on test (reported only). Runs append to a JSON-lines file and the
script skips runs already there, so it can be stopped and resumed; runs go seed by
seed, so a partial file is balanced across variants.

    .venv/bin/python experiments/ablation.py --dataset reuters21578 --seeds 3 \\
        --out experiments/results/ablation_reuters21578.jsonl
    .venv/bin/python experiments/ablation.py --dataset reuters21578 --report \\
        --out experiments/results/ablation_reuters21578.jsonl
    .venv/bin/python experiments/ablation.py --suite beat-br --dataset cooking_se --seeds 3 \\
        --out experiments/results/beat_br_cooking_se.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from mlgen import datasets, registry
from mlgen.config import ModelConfig, TrainConfig
from mlgen.decisions import policy
from mlgen.eval import metrics

# name -> ModelConfig/TrainConfig overrides of BASE; "default" is the baseline every other row is read against.
VARIANTS = {
    "default": {},
    "label head": {"label_loss_weight": 1.0},
    "weight averaging": {"ema_momentum": 0.99},
    "cell lstm": {"cell": "lstm"},
    "cell simple": {"cell": "simple"},
    "decoder layers 2": {"decoder_layers": 2},
    "context init": {"context": "init"},
    "context add": {"context": "add"},
    "context mlp": {"context": "mlp"},
    "attention dot": {"attention": "dot"},
    "attention general": {"attention": "general"},
    "attention concat": {"attention": "concat"},
    "sampling linear": {"scheduled_sampling": "linear"},
    "sampling exponential": {"scheduled_sampling": "exponential"},
    "sampling inverse-sigmoid": {"scheduled_sampling": "inverse-sigmoid"},
    "order rare-first": {"label_order": "rare-first"},  # the default since session 7
    "order alphabetical": {"label_order": "alphabetical"},
    "order shuffle": {"label_order": "shuffle"},
}
# The training every variant starts from: the defaults as of the ablation's first runs (session 2), so rows
# measured before a default changed stay comparable. Weight averaging became the default in session 4, word
# dropout 0.1 and the rare-first label order in session 7, the auto decision in session 8, the linear-br
# ensemble in session 9.
BASE = {"ema_momentum": 0.0, "word_dropout": 0.0, "label_order": "frequency", "decision": "mode", "ensemble": "none"}
# Issue 16: the options meant to beat binary relevance, against today's defaults.
BEAT_BR = {
    "default": {},
    "order model": {"label_order": "model"},
    "set loss": {"label_order": "model", "loss": "set"},
    "feedback global": {"feedback": "global"},
    "label head": {"label_loss_weight": 1.0},  # with decision auto: the head's probability in the marginal rule
    # The network of "default", with linear-br beside it and the decision fitted: today's defaults.
    "linear-br ensemble": {"ensemble": "linear-br", "decision": "auto"},
}
# The plain rows keep the most probable sequence, so that `+ decision auto` rows isolate the decision.
SUITES = {"decoder": (VARIANTS, BASE), "beat-br": (BEAT_BR, {"decision": "mode", "ensemble": "none"})}
REPORT_KEYS = ("micro_f1", "macro_f1", "subset_accuracy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--suite", choices=SUITES, default="decoder", help="decoder (default) or beat-br")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    parser.add_argument(
        "--out",
        required=True,
        help="JSON-lines file to append to (and report from; --report takes several, comma-separated)",
    )
    parser.add_argument("--report", action="store_true", help="print the Markdown tables of --out and stop")
    args = parser.parse_args()
    if args.report:
        runs = {}
        for path in args.out.split(","):
            frame = pd.read_json(path, lines=True)
            runs[frame["dataset"].iloc[0]] = frame
            print(report(frame, frame["dataset"].iloc[0]) + "\n")
        if len(runs) > 1:
            print(summary(runs))
        return
    variants, base = SUITES[args.suite]
    names = args.variants.split(",") if args.variants else list(variants)
    done = set()
    if Path(args.out).exists():
        done = {(r["variant"], r["seed"]) for r in map(json.loads, Path(args.out).read_text().splitlines())}
    train = datasets.read(args.dataset, "train")
    dev = datasets.read(args.dataset, "dev") if "dev" in datasets.splits(args.dataset) else None
    test = datasets.read(args.dataset, "test")
    for seed in range(args.seeds):
        for name in names:
            if (name, seed) in done:
                continue
            started, cpu_started = time.perf_counter(), time.process_time()
            options = {**base, **variants[name], "seed": seed}
            predictor = registry.fit("cnn-rnn", train, dev, *_configs(options), verbose=0)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            scores = metrics.evaluate(test.label_sets, predictor.predict(test.texts), predictor.labels)
            record = {
                "dataset": args.dataset,
                "variant": name,
                "seed": seed,
                "overrides": variants[name],
                **{f"dev_{k}": predictor.metrics["dev"][k] for k in REPORT_KEYS},
                **{f"test_{k}": scores[k] for k in REPORT_KEYS},
                "train_seconds": round(seconds, 1),
                # CPU time of all threads: comparable across runs that shared the machine.
                "train_cpu_seconds": round(cpu_seconds, 1),
                "epochs_run": predictor.metrics["epochs_run"],
            }
            if "decision" in variants[name]:  # fitted in training: dev as it was chosen on (cross-fitted)
                decision = predictor.decision
                record.update({f"dev_{k}": decision.dev_scores[decision.chosen][k] for k in REPORT_KEYS})
                record["decision"] = policy.describe(decision.default)
            records = [record]
            if args.suite == "beat-br" and "decision" not in variants[name]:
                records.append(
                    _with_decision(record, predictor, dev if dev is not None else _dev_split(train, seed), test)
                )
            for line in records:
                print(json.dumps(line), flush=True)
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")


def _dev_split(train, seed: int):
    from mlgen.data import train_dev_split

    return train_dev_split(train, TrainConfig().dev_fraction, seed)[1]


def _with_decision(record: dict, predictor, dev, test) -> dict:
    """`record` again as `<variant> + decision auto`: the marginal rule fitted on dev, kept
    if it beats the mode there (cross-fitted), and test scored with the rule kept."""
    started = time.process_time()
    decision = predictor.fit_decision(dev, "auto")
    chosen = decision.dev_scores[decision.default.name]
    scores = metrics.evaluate(test.label_sets, predictor.predict(test.texts), predictor.labels)
    return {
        **record,
        "variant": f"{record['variant']} + decision auto",
        **{f"dev_{k}": chosen[k] for k in REPORT_KEYS},
        **{f"test_{k}": scores[k] for k in REPORT_KEYS},
        "decision": {key: decision[key] for key in ("rule", "threshold", "head_weight", "dev_scores")},
        "train_cpu_seconds": round(record["train_cpu_seconds"] + time.process_time() - started, 1),
    }


def _configs(options: dict) -> tuple[ModelConfig, TrainConfig]:
    """`options` split between the two config classes by field name."""
    return tuple(
        cls(**{k: v for k, v in options.items() if k in {f.name for f in dataclasses.fields(cls)}})
        for cls in (ModelConfig, TrainConfig)
    )


def report(runs: pd.DataFrame, dataset: str) -> str:
    """Mean ± std per variant, dev columns first.

    "Δ dev micro-F1" is paired: per seed, the variant's dev micro-F1 minus the default's
    with the same seed (mean ± std over the seeds both have); "wins" counts the seeds
    where the variant is higher. "CPU × default" is the ratio of mean `train_cpu_seconds`.
    """
    columns = [f"dev_{k}" for k in REPORT_KEYS] + [f"test_{k}" for k in REPORT_KEYS] + ["train_seconds"]
    columns += ["train_cpu_seconds"] if "train_cpu_seconds" in runs else []
    grouped = runs.groupby("variant", sort=False)
    mean, std, count = grouped[columns].mean(), grouped[columns].std(ddof=1).fillna(0.0), grouped.size()
    header = ["variant", "seeds", "Δ dev micro-F1", "wins", *columns]
    header += ["CPU × default"] if "train_cpu_seconds" in runs else []
    lines = [
        f"{dataset}: mean ± std over seeds; choose on dev, test only reported.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for name in mean.index:
        delta = _paired_delta(runs, name)
        spread = delta.std(ddof=1) if len(delta) > 1 else 0.0
        cells = [name, str(count[name])]
        paired = [f"{delta.mean():+.4f} ± {spread:.4f}", f"{(delta > 0).sum()}/{len(delta)}"]
        cells += ["—", "—"] if name == "default" else paired
        for column in columns:
            digits = 0 if column.endswith("seconds") else 4
            cells.append(f"{mean.loc[name, column]:.{digits}f} ± {std.loc[name, column]:.{digits}f}")
        if "train_cpu_seconds" in runs:
            cells.append(f"{mean.loc[name, 'train_cpu_seconds'] / mean.loc['default', 'train_cpu_seconds']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _paired_delta(runs: pd.DataFrame, name: str) -> pd.Series:
    """Per seed that both have: variant `name`'s dev micro-F1 minus the default's."""
    by_seed = runs.pivot_table(index="seed", columns="variant", values="dev_micro_f1")
    if name not in by_seed or "default" not in by_seed:
        return pd.Series(dtype=float)
    return (by_seed[name] - by_seed["default"]).dropna()


def summary(runs: dict[str, pd.DataFrame]) -> str:
    """One row per variant: its paired Δ dev micro-F1 (seeds won) and CPU ratio on each dataset."""
    names = list(dict.fromkeys(name for frame in runs.values() for name in frame["variant"]))
    header = ["variant"] + [f"{dataset}: Δ dev micro-F1 (wins), CPU × default" for dataset in runs]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(runs)) + "|"]
    for name in names:
        cells = [name]
        for frame in runs.values():
            delta = _paired_delta(frame, name)
            if name == "default" or delta.empty:
                cells.append("—")
                continue
            cpu = frame.groupby("variant")["train_cpu_seconds"].mean() if "train_cpu_seconds" in frame else None
            ratio = cpu[name] / cpu["default"] if cpu is not None else float("nan")
            ratio = "" if pd.isna(ratio) else f", {ratio:.2f}×"
            cells.append(f"{delta.mean():+.4f} ({(delta > 0).sum()}/{len(delta)}){ratio}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
