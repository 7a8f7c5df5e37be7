"""Speed and memory of mlgen's models, measured in one process on the bundled Reuters-21578.

Times are compared as ratios within this one run (the machines are noisy):

- training docs/s of cnn-rnn and cnn-br (the second epoch: the first one traces);
- predict docs/s on the 3,019 test documents: cnn-br, cnn-rnn greedy, cnn-rnn beam 5,
  linear-br (each after a warm-up call that compiles);
- how cnn-rnn's training epoch and prediction time grow with the number of documents
  (1k/2k/4k/8k) and with the text length (100/200/400 tokens);
- the process's peak RSS.

    .venv/bin/python experiments/bench.py --json experiments/results/bench.json

Every model trains with the defaults of `mlgen train` except `epochs=2` and no early
stopping. The test split is only timed, never scored.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time

from mlgen import datasets, registry
from mlgen.compare import timed_predict
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig

SIZES = (1000, 2000, 4000, 8000)
LENGTHS = (100, 200, 400)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer documents and one size/length (a smoke run)")
    args = parser.parse_args()
    started = time.perf_counter()

    train = datasets.read("reuters21578", "train")
    test = datasets.read("reuters21578", "test")
    sizes, lengths = (SIZES, LENGTHS) if not args.quick else ((500, 1000), (100,))
    if args.quick:
        train, test = train.subset(range(1200)), test.subset(range(300))
    dev = train.subset(range(len(train) - 500, len(train)))  # fixed, so every run scores the same dev
    pool = train.subset(range(len(train) - 500))
    two_epochs = TrainConfig(epochs=2, patience=99)

    figures: dict = {"train_docs": len(pool), "test_docs": len(test)}
    models = {}
    for model_type in ("cnn-rnn", "cnn-br"):
        _say(f"training {model_type} for two epochs on {len(pool)} documents")
        models[model_type] = registry.fit(model_type, pool, dev, ModelConfig(), two_epochs, verbose=0)
        figures[f"train_docs_per_s_{model_type}"] = models[model_type].history["train_docs_per_s"][-1]
    _say("fitting linear-br")
    fit_started = time.perf_counter()
    models["linear-br"] = registry.fit("linear-br", pool, dev, baseline_config=BaselineConfig(), verbose=0)
    figures["train_docs_per_s_linear-br"] = len(pool) / (time.perf_counter() - fit_started)

    for name, model_type, beam_size in (
        ("cnn-br", "cnn-br", None),
        ("greedy", "cnn-rnn", 1),
        ("beam5", "cnn-rnn", 5),
        ("linear-br", "linear-br", None),
    ):
        figures[f"predict_docs_per_s_{name}"] = _predict_speed(models[model_type], test.texts, beam_size)
        _say(f"predict {name}: {figures[f'predict_docs_per_s_{name}']:.0f} docs/s")

    figures["greedy_vs_cnn_br"] = figures["predict_docs_per_s_greedy"] / figures["predict_docs_per_s_cnn-br"]
    figures["beam5_vs_greedy"] = figures["predict_docs_per_s_beam5"] / figures["predict_docs_per_s_greedy"]
    figures["train_cnn_rnn_vs_cnn_br"] = figures["train_docs_per_s_cnn-rnn"] / figures["train_docs_per_s_cnn-br"]

    models.clear()
    _free()

    texts = [*pool.texts, *test.texts]
    figures["by_documents"] = []
    for n in sizes:
        n = min(n, len(pool))
        _say(f"cnn-rnn on {n} documents")
        predictor = registry.fit("cnn-rnn", pool.subset(range(n)), dev, ModelConfig(), two_epochs, verbose=0)
        predict_docs_per_s = _predict_speed(predictor, texts[:n], 1)
        figures["by_documents"].append(
            {
                "docs": n,
                "train_epoch_s": n / predictor.history["train_docs_per_s"][-1],
                "predict_s": n / predict_docs_per_s,
            }
        )
        del predictor
        _free()
    figures["by_length"] = []
    subset = pool.subset(range(min(2000, len(pool))))
    for length in lengths:
        _say(f"cnn-rnn with {length}-token texts")
        config = ModelConfig(sequence_length=length)
        predictor = registry.fit("cnn-rnn", subset, dev, config, two_epochs, verbose=0)
        figures["by_length"].append(
            {
                "sequence_length": length,
                "train_docs_per_s": predictor.history["train_docs_per_s"][-1],
                "predict_docs_per_s": _predict_speed(predictor, test.texts, 1),
            }
        )
        del predictor
        _free()
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    figures["seconds"] = time.perf_counter() - started

    print(report(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")


def report(f: dict) -> str:
    """The figures as Markdown tables, ratios against the issue's targets."""
    rows = [
        ("greedy / cnn-br predict", f["greedy_vs_cnn_br"], "≥ 0.85"),
        ("beam 5 / greedy predict", f["beam5_vs_greedy"], "≥ 0.5"),
        ("cnn-rnn / cnn-br training", f["train_cnn_rnn_vs_cnn_br"], "≥ 0.5"),
    ]
    lines = ["| ratio | measured | target |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2f} | {target} |" for name, value, target in rows]
    lines += ["", "| docs/s | train | predict |", "|---|---:|---:|"]
    for name, train_key, predict_key in (
        ("cnn-rnn greedy", "cnn-rnn", "greedy"),
        ("cnn-rnn beam 5", None, "beam5"),
        ("cnn-br", "cnn-br", "cnn-br"),
        ("linear-br", "linear-br", "linear-br"),
    ):
        train = f"{f[f'train_docs_per_s_{train_key}']:.0f}" if train_key else ""
        lines.append(f"| {name} | {train} | {f[f'predict_docs_per_s_{predict_key}']:.0f} |")
    first = f["by_documents"][0]
    lines += [
        "",
        "| documents | train epoch s | per doc vs first | predict s | per doc vs first |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in f["by_documents"]:
        # Time per document relative to the smallest run: 1.0 everywhere is linear growth.
        train_rel = (row["train_epoch_s"] / row["docs"]) / (first["train_epoch_s"] / first["docs"])
        predict_rel = (row["predict_s"] / row["docs"]) / (first["predict_s"] / first["docs"])
        lines.append(
            f"| {row['docs']} | {row['train_epoch_s']:.1f} | {train_rel:.2f} "
            f"| {row['predict_s']:.2f} | {predict_rel:.2f} |"
        )
    lines += ["", "| tokens per text | train docs/s | predict docs/s |", "|---|---:|---:|"]
    lines += [
        f"| {row['sequence_length']} | {row['train_docs_per_s']:.0f} | {row['predict_docs_per_s']:.0f} |"
        for row in f["by_length"]
    ]
    lines += ["", f"peak RSS {f['peak_rss_mb']:.0f} MB (target ≤ 1536); whole run {f['seconds']:.0f} s"]
    return "\n".join(lines)


def _predict_speed(predictor, texts, beam_size) -> float:
    return timed_predict(predictor, texts, beam_size)[1]


def _free() -> None:
    """Releases the models trained so far, so the peak RSS is one model's, not the sum."""
    import keras

    gc.collect()
    keras.backend.clear_session()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
