"""Speed and memory of mlgen's models, measured in one process on the bundled Reuters-21578.

Times are compared as ratios within this one run (the machines are noisy):

- training docs/s of cnn-rnn and cnn-br (the faster of epochs 2 and 3: the first one traces);
- predict docs/s on the 3,019 test documents: cnn-br, cnn-rnn greedy and beam 5 (the most probable
  sequence), cnn-rnn with the rule fitted on dev (what `predict` runs by default), linear-br (each
  after a warm-up call that compiles; best of 3 interleaved repeats);
- how cnn-rnn's training epoch and prediction time grow with the number of documents
  (1k/2k/4k/8k) and with the text length (100/200/400 tokens), each the better of two
  interleaved rounds;
- the issue 26 targets, defaults against defaults: cnn-rnn's predict with the rule fitted on dev
  against cnn-br's on Reuters (`fitted_vs_cnn_br`) and on cooking_se's short titles
  (`short_fitted_vs_cnn_br`, both trained on cooking_se's train split for three epochs, timed on its
  test split, in a process of its own), and cnn-rnn's training docs/s against cnn-br's on both;
- each process's peak RSS (Reuters's; cooking_se's);
- greedy and cnn-br predict docs/s again in fresh processes under other TensorFlow
  settings: oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`) and one intra-op thread
  (`TF_NUM_INTRAOP_THREADS=1`), against the defaults in a process of its own.

    .venv/bin/python experiments/bench.py --json experiments/results/bench.json
    .venv/bin/python experiments/bench.py --targets-only   # the issue 26 targets alone (no scaling, no probes)

Every model trains with the defaults of `mlgen train` except `epochs=3` and no early
stopping. The test split is only timed, never scored.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from mlgen import datasets, registry
from mlgen.compare import timed_predict
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig

# Fresh processes that time the saved models under other TensorFlow settings.
SETTINGS = {
    "defaults": {},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "one_intra_op_thread": {"TF_NUM_INTRAOP_THREADS": "1"},
}
SIZES = (1000, 2000, 4000, 8000)
REPEATS = 3
SCALING_ROUNDS = 2
LENGTHS = (100, 200, 400)
# Every model trains with `mlgen train`'s defaults but three epochs and no early stopping.
EPOCHS = TrainConfig(epochs=3, patience=99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer documents and one size/length (a smoke run)")
    parser.add_argument(
        "--targets-only", action="store_true", help="only the predict and training ratios and the peak RSS"
    )
    parser.add_argument("--probe", metavar="DIR", help=argparse.SUPPRESS)  # internal: time DIR's saved models
    parser.add_argument("--short-texts", action="store_true", help=argparse.SUPPRESS)  # internal: the cooking_se part
    args = parser.parse_args()
    if args.probe:
        return _probe(args.probe, args.quick)
    if args.short_texts:
        figures = _short_texts(args.quick, EPOCHS)
        figures["short_peak_rss_mb"] = _peak_rss_mb()
        return print(json.dumps(figures))
    started = time.perf_counter()

    train = datasets.read("reuters21578", "train")
    test = datasets.read("reuters21578", "test")
    sizes, lengths = (SIZES, LENGTHS) if not args.quick else ((500, 1000), (100,))
    if args.quick:
        train, test = train.subset(range(1200)), test.subset(range(300))
    dev = train.subset(range(len(train) - 500, len(train)))  # fixed, so every run scores the same dev
    pool = train.subset(range(len(train) - 500))
    epochs = EPOCHS

    figures: dict = {"train_docs": len(pool), "test_docs": len(test)}
    models = {}
    for model_type in ("cnn-rnn", "cnn-br"):
        _say(f"training {model_type} for three epochs on {len(pool)} documents")
        models[model_type] = registry.fit(model_type, pool, dev, ModelConfig(), epochs, verbose=0)
        figures[f"train_docs_per_s_{model_type}"] = max(models[model_type].history["train_docs_per_s"][1:])
    _say("fitting linear-br")
    fit_started = time.perf_counter()
    models["linear-br"] = registry.fit("linear-br", pool, dev, baseline_config=BaselineConfig(), verbose=0)
    figures["train_docs_per_s_linear-br"] = len(pool) / (time.perf_counter() - fit_started)

    runs = (  # name, model, beam size, decision rule (None: the one fitted on dev)
        ("cnn-br", "cnn-br", None, None),
        ("greedy", "cnn-rnn", 1, "mode"),
        ("beam5", "cnn-rnn", 5, "mode"),
        ("fitted", "cnn-rnn", None, None),
        ("linear-br", "linear-br", None, None),
    )
    speeds = {name: [] for name, *_ in runs}
    for _ in range(REPEATS):  # interleaved, so a slow spell of the machine hits every model
        for name, model_type, beam_size, decision in runs:
            speeds[name].append(_predict_speed(models[model_type], test.texts, beam_size, decision))
    figures["fitted_decision"] = models["cnn-rnn"].decision_rule
    figures["fitted_beam_size"] = getattr(models["cnn-rnn"].decision.default, "beam_size", None)
    figures["ensemble_weights"] = {t: models[t].ensemble_weights for t in ("cnn-rnn", "cnn-br")}
    for name, values in speeds.items():
        figures[f"predict_docs_per_s_{name}"] = max(values)  # the least disturbed repeat
        _say(f"predict {name}: {max(values):.0f} docs/s (best of {REPEATS})")

    figures["greedy_vs_cnn_br"] = figures["predict_docs_per_s_greedy"] / figures["predict_docs_per_s_cnn-br"]
    figures["beam5_vs_greedy"] = figures["predict_docs_per_s_beam5"] / figures["predict_docs_per_s_greedy"]
    figures["fitted_vs_greedy"] = figures["predict_docs_per_s_fitted"] / figures["predict_docs_per_s_greedy"]
    figures["train_cnn_rnn_vs_cnn_br"] = figures["train_docs_per_s_cnn-rnn"] / figures["train_docs_per_s_cnn-br"]
    figures["fitted_vs_cnn_br"] = figures["predict_docs_per_s_fitted"] / figures["predict_docs_per_s_cnn-br"]
    if args.targets_only:
        models.clear()
        _free()
        figures.update(_short_texts_apart(args.quick))
        return _finish(figures, started, args)

    with tempfile.TemporaryDirectory() as folder:
        for model_type in ("cnn-rnn", "cnn-br"):
            models[model_type].save(os.path.join(folder, model_type))
        for setting, env in SETTINGS.items():
            _say(f"predict in a fresh process: {setting}")
            command = [sys.executable, __file__, "--probe", folder, *(["--quick"] if args.quick else [])]
            output = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            probe = json.loads(output.stdout.strip().splitlines()[-1])
            figures[f"settings_{setting}"] = {**probe, "greedy_vs_cnn_br": probe["greedy"] / probe["cnn-br"]}
    models.clear()
    _free()
    figures.update(_short_texts_apart(args.quick))

    # Scaling: cnn-rnn trained on 1k..8k documents and on 100..400-token windows. Each setting
    # runs twice, in two interleaved rounds, and keeps its faster round.
    texts = [*pool.texts, *test.texts]
    subset = pool.subset(range(min(2000, len(pool))))
    counts = [min(n, len(pool)) for n in sizes]
    # The network alone: what is timed (training epochs, greedy decoding) does not involve the ensemble.
    plain = {"ensemble": "none", "decision": "mode"}
    settings = [("docs", n, pool.subset(range(n)), ModelConfig(**plain), texts[:n]) for n in counts]
    settings += [("length", n, subset, ModelConfig(sequence_length=n, **plain), test.texts) for n in lengths]
    best: dict = {}
    for repeat in range(SCALING_ROUNDS):
        for kind, value, data, config, predict_texts in settings:
            _say(f"round {repeat + 1}: cnn-rnn, {kind} {value}")
            predictor = registry.fit("cnn-rnn", data, dev, config, epochs, verbose=0)
            speeds = (max(predictor.history["train_docs_per_s"][1:]), _predict_speed(predictor, predict_texts, 1))
            previous = best.get((kind, value), (0.0, 0.0))
            best[(kind, value)] = (max(previous[0], speeds[0]), max(previous[1], speeds[1]))
            del predictor
            _free()
    figures["by_documents"] = [
        {"docs": n, "train_epoch_s": n / best[("docs", n)][0], "predict_s": len(t) / best[("docs", n)][1]}
        for kind, n, _, _, t in settings
        if kind == "docs"
    ]
    figures["by_length"] = [
        {"sequence_length": n, "train_docs_per_s": best[("length", n)][0], "predict_docs_per_s": best[("length", n)][1]}
        for kind, n, _, _, _ in settings
        if kind == "length"
    ]
    _finish(figures, started, args)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _finish(figures: dict, started: float, args) -> None:
    figures["peak_rss_mb"] = _peak_rss_mb()
    figures["seconds"] = time.perf_counter() - started
    print(report(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")


def _short_texts_apart(quick: bool) -> dict:
    """`_short_texts` in a process of its own (as a user trains one dataset per process), with
    its peak RSS as `short_peak_rss_mb`."""
    command = [sys.executable, __file__, "--short-texts", *(["--quick"] if quick else [])]
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # its progress lines pass through
    return json.loads(output.stdout.strip().splitlines()[-1])


def _short_texts(quick: bool, epochs: TrainConfig) -> dict:
    """cnn-rnn and cnn-br with their defaults on cooking_se's question titles: training docs/s and
    predict docs/s of each one's fitted decision on the test split (best of `REPEATS` interleaved)."""
    train, dev, test = (datasets.read("cooking_se", split) for split in ("train", "dev", "test"))
    if quick:
        train, dev, test = train.subset(range(1500)), dev.subset(range(300)), test.subset(range(300))
    models, figures = {}, {}
    for model_type in ("cnn-rnn", "cnn-br"):
        _say(f"training {model_type} for three epochs on cooking_se ({len(train)} titles)")
        models[model_type] = registry.fit(model_type, train, dev, ModelConfig(), epochs, verbose=0)
        figures[f"short_train_docs_per_s_{model_type}"] = max(models[model_type].history["train_docs_per_s"][1:])
    speeds = {name: 0.0 for name in models}
    for _ in range(REPEATS):
        for name, model in models.items():
            speeds[name] = max(speeds[name], _predict_speed(model, test.texts, None, None))
    for name, value in speeds.items():
        figures[f"short_predict_docs_per_s_{name}"] = value
        _say(f"cooking_se predict {name}: {value:.0f} docs/s (best of {REPEATS})")
    figures["short_fitted_decision"] = models["cnn-rnn"].decision_rule
    figures["short_fitted_beam_size"] = getattr(models["cnn-rnn"].decision.default, "beam_size", None)
    figures["short_fitted_vs_cnn_br"] = speeds["cnn-rnn"] / speeds["cnn-br"]
    figures["short_train_cnn_rnn_vs_cnn_br"] = (
        figures["short_train_docs_per_s_cnn-rnn"] / figures["short_train_docs_per_s_cnn-br"]
    )
    models.clear()
    _free()
    return figures


def _probe(folder: str, quick: bool) -> None:
    """Prints the best-of-`REPEATS` predict docs/s of the saved cnn-br and greedy cnn-rnn."""
    from mlgen import load

    test = datasets.read("reuters21578", "test")
    texts = test.texts[:300] if quick else test.texts
    models = {"cnn-br": load(os.path.join(folder, "cnn-br")), "greedy": load(os.path.join(folder, "cnn-rnn"))}
    speeds = {name: 0.0 for name in models}
    for _ in range(REPEATS):  # interleaved; `timed_predict` compiles before it times
        for name, model in models.items():
            greedy = name == "greedy"
            speeds[name] = max(speeds[name], _predict_speed(model, texts, *((1, "mode") if greedy else (None, None))))
    print(json.dumps(speeds))


def _rule(f: dict, prefix: str) -> str:
    beam = f.get(f"{prefix}fitted_beam_size")
    return f[f"{prefix}fitted_decision"] + (f", beam {beam}" if beam else "")


def report(f: dict) -> str:
    """The figures as Markdown tables, ratios against the issue's targets."""
    rows = [
        (f"Reuters: cnn-rnn fitted ({_rule(f, '')}) / cnn-br predict", f["fitted_vs_cnn_br"], "≥ 0.5"),
        (
            f"cooking_se: cnn-rnn fitted ({_rule(f, 'short_')}) / cnn-br predict",
            f["short_fitted_vs_cnn_br"],
            "≥ 0.5",
        ),
        ("Reuters: cnn-rnn / cnn-br training", f["train_cnn_rnn_vs_cnn_br"], "≥ 0.6"),
        ("cooking_se: cnn-rnn / cnn-br training", f["short_train_cnn_rnn_vs_cnn_br"], "≥ 0.6"),
        ("greedy / cnn-br predict", f["greedy_vs_cnn_br"], "(reported)"),
        ("beam 5 / greedy predict", f["beam5_vs_greedy"], "(reported)"),
        (f"fitted rule ({f['fitted_decision']}) / greedy predict", f["fitted_vs_greedy"], "(reported)"),
    ]
    lines = ["| ratio | measured | target |", "|---|---:|---|"]
    lines += [f"| {name} | {value:.2f} | {target} |" for name, value, target in rows]
    lines += ["", "| docs/s (Reuters) | train | predict |", "|---|---:|---:|"]
    for name, train_key, predict_key in (
        ("cnn-rnn greedy", "cnn-rnn", "greedy"),
        ("cnn-rnn beam 5", None, "beam5"),
        ("cnn-rnn, fitted rule", None, "fitted"),
        ("cnn-br", "cnn-br", "cnn-br"),
        ("linear-br", "linear-br", "linear-br"),
    ):
        train = f"{f[f'train_docs_per_s_{train_key}']:.0f}" if train_key else ""
        lines.append(f"| {name} | {train} | {f[f'predict_docs_per_s_{predict_key}']:.0f} |")
    lines += ["", "| docs/s (cooking_se) | train | predict |", "|---|---:|---:|"]
    lines += [
        f"| {name} | {f[f'short_train_docs_per_s_{name}']:.0f} | {f[f'short_predict_docs_per_s_{name}']:.0f} |"
        for name in ("cnn-rnn", "cnn-br")
    ]
    tail = [
        "",
        f"peak RSS {f['peak_rss_mb']:.0f} MB (Reuters process), {f['short_peak_rss_mb']:.0f} MB (cooking_se process) "
        f"(target ≤ 1200); whole run {f['seconds']:.0f} s",
    ]
    if "by_documents" not in f:  # --targets-only
        return "\n".join(lines + tail)
    lines += ["", "| fresh process with | cnn-br predict docs/s | greedy docs/s | greedy / cnn-br |"]
    lines += ["|---|---:|---:|---:|"]
    lines += [
        f"| {name} | {f[f'settings_{name}']['cnn-br']:.0f} | {f[f'settings_{name}']['greedy']:.0f} "
        f"| {f[f'settings_{name}']['greedy_vs_cnn_br']:.2f} |"
        for name in SETTINGS
    ]
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
    return "\n".join(lines + tail)


def _predict_speed(predictor, texts, beam_size, decision=None) -> float:
    return timed_predict(predictor, texts, beam_size, decision)[1]


def _free() -> None:
    """Releases the models trained so far, so the peak RSS is one model's, not the sum."""
    import keras

    gc.collect()
    keras.backend.clear_session()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
