"""`mlgen compare`: cnn-rnn against the binary-relevance baselines, over seeds, on one test set.

Every model trains with its defaults (plus any shared overrides) once per seed, and is
scored on the test data and timed under the decision it fitted on dev for each metric
compared (`decision_metrics`); the folder written holds `runs.csv` (one row per model, seed
and decision metric), `results.csv` (mean and std per model and decision metric) and
`results.md` (a table per decision metric), the per-label F1 table, and three PNG plots
(those of the first decision metric's predictions).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter

import pandas as pd

from mlgen import artifacts, registry
from mlgen.config import DECISION_METRICS, BaselineConfig, ModelConfig, TrainConfig, save_json
from mlgen.data import LabelledData
from mlgen.eval import metrics, plots
from mlgen.progress import Progress

RESULTS = "results.csv"
RUNS = "runs.csv"
RESULTS_MD = "results.md"
PER_LABEL = "per_label_f1.csv"
PLOTS = ("per_label_f1.png", "training_curves.png", "set_sizes.png", "reliability.png")
SETTINGS = "compare.json"
# What `compare` writes; only a folder holding nothing else is replaced.
FOLDER = artifacts.FolderKind(
    "mlgen compare folder", SETTINGS, "seeds", frozenset({RESULTS, RUNS, RESULTS_MD, PER_LABEL, SETTINGS, *PLOTS})
)
# The columns `results.md` shows, in order.
TABLE_KEYS = (
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "subset_accuracy",
    "hamming_loss",
    "micro_precision",
    "micro_recall",
    "P@1",
    "P@3",
    "nDCG@3",
    "ece",
    "ece_scores",
    "train_seconds",
    "predict_docs_per_s",
)
_WARMUP_DOCS = 64


def compare(
    train: LabelledData,
    test: LabelledData,
    out,
    dev: LabelledData | None = None,
    *,
    seeds: int = 3,
    models=tuple(registry.MODEL_TYPES),
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    baseline_config: BaselineConfig = BaselineConfig(),
    decision_metrics: tuple[str, ...] = DECISION_METRICS,
    verbose=1,
) -> pd.DataFrame:
    """Trains each of `models` with seeds 0..`seeds`-1, scores it on `test`, writes `out`.

    Args:
        train, dev: training data; without `dev` each seed splits
            `train_config.dev_fraction` off `train` with its own seed.
        test: the data every model is scored and timed on.
        out: folder to write (replaced atomically).
        seeds: runs per model.
        models: model types to compare.
        model_config, train_config, baseline_config: shared settings; each model
            reads the fields it uses and `train_config.seed` is replaced by each seed.
        decision_metrics: each model is scored under the decision it fitted for each of these
            (`mlgen.config.DECISION_METRICS`), one row of `runs.csv` apiece.
        verbose: 0 quiet; 1 a line as each run starts and ends, with the runs done and
            the time left; 2 also Keras's line per epoch.

    Returns:
        The `results.csv` table: one row per model and decision metric, `<metric>_mean` and
        `<metric>_std`.
    """
    artifacts.check_out_dir(out, FOLDER)  # before hours of training, not after
    runs, per_label, histories, sizes, reliability = [], {}, {}, {}, {}
    progress = Progress("runs", total=len(models) * seeds, enabled=False)  # its line only, in `_say`
    for model_type in models:
        label_f1 = []
        for seed in range(seeds):
            _say(f"compare: {model_type}, seed {seed}", verbose)
            predictor = registry.fit(
                model_type,
                train,
                dev,
                model_config,
                dataclasses.replace(train_config, seed=seed),
                baseline_config,
                verbose=2 if verbose >= 2 else 0,
            )
            said = []
            for decision_metric in decision_metrics:
                _, docs_per_s = timed_predict(predictor, test.texts, metric=decision_metric)  # `predict`'s speed
                # The label sets and their ranking, at once.
                ranked, label_scores = predictor.predict_ranked(test.texts, metric=decision_metric)
                predicted = [p.labels for p in ranked]
                scores = metrics.evaluate(test.label_sets, predicted, predictor.labels)
                scores.update(metrics.ranking(test.label_sets, label_scores, predictor.labels))
                rule = predictor.rule(metric=decision_metric)
                probabilities = predictor.probabilities(test.texts, label_scores, rule)  # predict_proba's
                ece, bins = metrics.calibration(test.label_sets, probabilities, predictor.labels)
                ece_scores = metrics.calibration(test.label_sets, label_scores, predictor.labels)[0]
                runs.append(
                    {
                        "model": model_type,
                        "seed": seed,
                        "decision_metric": decision_metric,
                        "decision": rule.name + (" + linear-br" if rule.uses_linear else ""),
                        **{key: scores[key] for key in (*metrics.SCORE_KEYS, *metrics.RANKING_KEYS)},
                        "ece": ece if ece is not None else float("nan"),
                        "ece_scores": ece_scores if ece_scores is not None else float("nan"),
                        "train_seconds": predictor.metrics["train_seconds"],
                        "predict_docs_per_s": docs_per_s,
                    }
                )
                said.append(f"{decision_metric} {metrics.gain(scores, decision_metric):.4f}")
                if decision_metric != decision_metrics[0]:
                    continue
                table = metrics.per_label(test.label_sets, predicted, predictor.labels)
                label_f1.append(table.set_index("label")["f1"])
                if seed == 0:
                    sizes[model_type] = [len(p) for p in predicted]
                    reliability[model_type] = bins
            if predictor.history:
                histories.setdefault(model_type, []).append(predictor.history)
            progress.update(1)
            _say(f"compare: {model_type}, seed {seed}: test {', '.join(said)}; {progress.line()}", verbose)
        per_label[model_type] = pd.concat(label_f1, axis=1).mean(axis=1)

    runs = pd.DataFrame(runs)
    results = summarize(runs)
    frequency = Counter(label for s in train.label_sets for label in s)
    per_label_table = pd.DataFrame(per_label).rename_axis("label").reset_index()
    per_label_table.insert(1, "train_docs", [frequency.get(label, 0) for label in per_label_table["label"]])
    with artifacts.atomic_dir(out, FOLDER) as staging:
        runs.to_csv(staging / RUNS, index=False, float_format="%.6g")
        results.to_csv(staging / RESULTS, index=False, float_format="%.6g")
        per_label_table.to_csv(staging / PER_LABEL, index=False, float_format="%.4f")
        (staging / RESULTS_MD).write_text(markdown(results, test, seeds), encoding="utf-8")
        save_json(
            {
                "train": train.source,
                "dev": dev.source if dev is not None else f"{train_config.dev_fraction} of train per seed",
                "test": test.source,
                "seeds": seeds,
                "models": list(models),
                "decision_metrics": list(decision_metrics),
            },
            staging / SETTINGS,
        )
        plots.per_label_f1(frequency, {m: per_label[m].to_dict() for m in per_label}, staging / PLOTS[0])
        plots.training_curves(histories, staging / PLOTS[1])
        plots.set_sizes([len(s) for s in test.label_sets], sizes, staging / PLOTS[2])
        plots.reliability(reliability, staging / PLOTS[3])
    return results


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model (and decision metric, when `runs` has them; in first-seen order): mean and std
    (ddof 1; 0 for one seed) of every number, and the decision rules its seeds used
    (`"marginal 2, mode 1"`)."""
    numbers = [c for c in runs.columns if c not in ("model", "seed") and pd.api.types.is_numeric_dtype(runs[c])]
    keys = ["model", "decision_metric"] if "decision_metric" in runs else ["model"]
    grouped = runs.groupby(keys, sort=False)
    mean = grouped[numbers].mean().add_suffix("_mean")
    std = grouped[numbers].std(ddof=1).fillna(0.0).add_suffix("_std")
    columns = [f"{c}_{stat}" for c in numbers for stat in ("mean", "std")]
    table = pd.concat([mean, std], axis=1)[columns]
    table.insert(0, "seeds", grouped.size())
    if "decision" in runs:
        rules = grouped["decision"].agg(lambda r: ", ".join(f"{k} {n}" for k, n in Counter(r).most_common()))
        table.insert(1, "decision", rules)
    return table.reset_index()


def markdown(results: pd.DataFrame, test: LabelledData, seeds: int) -> str:
    """`results` as Markdown tables of `mean ± std`: one per decision metric (when `results`
    has them), one row per model."""
    header = ["model", "decision", *TABLE_KEYS]
    lines = [f"Test: {test.source} ({len(test)} documents); mean ± std over {seeds} seed(s)."]
    groups = results.groupby("decision_metric", sort=False) if "decision_metric" in results else [(None, results)]
    for decision_metric, rows in groups:
        if decision_metric is not None:
            lines += ["", f"Decided for {decision_metric} (each model under the rule it fitted on dev for it):"]
        lines += [
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---"] + ["---:"] * len(TABLE_KEYS)) + "|",
        ]
        for _, row in rows.iterrows():
            cells = [row["model"], row.get("decision", "")]
            for key in TABLE_KEYS:
                digits = 0 if key in ("train_seconds", "predict_docs_per_s") else 4
                mean, std = row[f"{key}_mean"], row[f"{key}_std"]
                cells.append("—" if pd.isna(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}")  # no ece: margins
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def timed_predict(predictor, texts, beam_size: int | None = None, decision: str | None = None, metric=None):
    """Predictions for `texts` and documents per second (after a warm-up call that compiles):
    `(label sets, docs/s)`."""
    predictor.predict(texts[:_WARMUP_DOCS], beam_size=beam_size, decision=decision, metric=metric)
    started = time.perf_counter()
    predicted = predictor.predict(texts, beam_size=beam_size, decision=decision, metric=metric)
    return predicted, len(texts) / max(time.perf_counter() - started, 1e-9)


def _say(message: str, verbose=1) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)
