"""`mlgen info`: what a run folder holds, from its JSON files alone (no model is loaded)."""

from __future__ import annotations

import json

from mlgen import artifacts
from mlgen.decisions.policy import LEGACY_METRIC
from mlgen.errors import as_json
from mlgen.predictors.base import read_config, read_vocabulary

# Labels the text report lists (`--json` lists them all).
SHOWN_LABELS = 10
# Dev scores the text report prints.
SHOWN_SCORES = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "info",
        help="describe a run folder: model type, labels, data, hyperparameters, dev scores, versions",
        description="Print what a run folder holds, read from its JSON files (the model is not loaded).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every label)")
    parser.set_defaults(func=run)


def describe(folder) -> dict:
    """The run folder's description: what `mlgen info --json` prints."""
    folder = artifacts.check_run_dir(folder)
    config = read_config(folder)
    vocab = read_vocabulary(folder)
    metrics = artifacts.read_json(folder, artifacts.METRICS, required=False) or {}
    return {
        "folder": str(folder),
        "model_type": artifacts.model_type(config),
        "mlgen_version": config.get("mlgen_version"),
        "versions": config.get("versions"),  # None: written before mlgen recorded them
        "num_labels": vocab.num_labels,
        "labels": vocab.labels,
        "data": config.get("data", {}),
        "hyperparameters": {key: config[key] for key in ("model", "baseline", "train") if key in config},
        "decision": _decision(folder),
        "dev": metrics.get("dev"),
        "training": {key: value for key, value in metrics.items() if key != "dev"},
    }


def _decision(folder) -> dict | None:
    """The default decision rule with its fitted numbers and the metric it was fitted for, and
    the rule fitted for each metric (`fitted_for`) and the calibration of `predict_proba`
    (`calibration`, None when not fitted: always so in format 1 and 2 files), as the run's
    decision file holds them (`mlgen.decisions.policy`), or None when the folder has none."""
    for name in (artifacts.DECISION, artifacts.THRESHOLDS):
        data = artifacts.read_json(folder, name, required=False)
        if data is None:
            continue
        if "format" not in data:  # format 1: the rule's numbers at the top level
            rule = {"rule": data.get("rule", "threshold"), **{k: v for k, v in data.items() if k not in DROPPED}}
            return {"metric": LEGACY_METRIC, **rule, "fitted_for": {LEGACY_METRIC: rule["rule"]}, "calibration": None}

        def entries(key: str) -> dict:  # an object of objects, or the one-line error naming the file
            value = data.get(key) or {}
            for where, entry in [(key, value), *((f"{key}.{k}", v) for k, v in getattr(value, "items", dict)())]:
                if not isinstance(entry, dict):
                    raise artifacts.damaged(folder, name, f'has {as_json(entry)} under "{where}", not an object')
            return value

        if data.get("format") == 2:
            rule = {"rule": data.get("rule"), **entries("rules").get(data.get("rule"), {})}
            return {"metric": LEGACY_METRIC, **rule, "fitted_for": {LEGACY_METRIC: rule["rule"]}, "calibration": None}
        decisions = entries("decisions")
        fitted_for = {metric: values.get("rule") for metric, values in decisions.items()}
        calibration = data.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise artifacts.damaged(folder, name, f'has {as_json(calibration)} under "calibration", not an object')
        return {
            "metric": data.get("metric"),
            **decisions.get(data.get("metric"), {}),
            "fitted_for": fitted_for,
            "calibration": calibration,
        }
    return None


def _calibration(calibration: dict | None) -> str:
    """How `predict_proba` makes probabilities, in words (the numbers as the file holds them)."""
    if not calibration:
        return "no calibration fitted (predict_proba gives probability scores as they are, refuses margins)"
    method, knots = calibration.get("method"), calibration.get("knots")
    if method == "isotonic":
        return f"isotonic calibration on dev ({len(knots) if isinstance(knots, list) else '?'} knots)"
    if method in ("temperature", "sigmoid"):
        shift = f", shift {as_json(calibration.get('shift'))}" if method == "sigmoid" else ""
        return f"{method} calibration on dev (scale {as_json(calibration.get('scale'))}{shift})"
    return f"{as_json(method)} (the label scores, kept on dev)"


# What `info` leaves out of a format 1 decision file: the dev scores are reported under "dev".
DROPPED = ("rule", "dev_scores", "chosen")


def run(args) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    versions = info["versions"]
    written = ", ".join(f"{name} {version}" for name, version in versions.items()) if versions else "not recorded"
    labels = ", ".join(info["labels"][:SHOWN_LABELS]) + (", ..." if info["num_labels"] > SHOWN_LABELS else "")
    lines = [
        f"{info['folder']}: {info['model_type']}, written by mlgen {info['mlgen_version']} ({written})",
        f"labels: {info['num_labels']} ({labels})",
    ]
    data = info["data"]
    if data:
        dev = f"; dev {data.get('dev')} ({data.get('dev_docs')} documents)" if data.get("dev") else ""
        streamed = ", streamed" if data.get("stream") else ""
        lines.append(f"data: train {data.get('train')} ({data.get('train_docs')} documents{streamed}){dev}")
    decision = info["decision"]
    if decision:
        left_out = ("rule", "metric", "fitted_for", "calibration")
        shown = {key: value for key, value in decision.items() if key not in left_out}
        numbers = ", ".join(f"{key} {json.dumps(value)}" for key, value in shown.items())
        lines.append(f"decision: {decision['rule']} for {decision['metric']} ({numbers})")
        lines.append("fitted for: " + ", ".join(f"{m} {rule}" for m, rule in decision["fitted_for"].items()))
        lines.append(f"probabilities: {_calibration(decision.get('calibration'))}")
    if info["dev"]:
        lines.append("dev: " + ", ".join(f"{key} {info['dev'][key]:.4f}" for key in SHOWN_SCORES if key in info["dev"]))
    if info["training"]:
        lines.append("training: " + ", ".join(f"{key} {value}" for key, value in info["training"].items()))
    for section, values in info["hyperparameters"].items():
        lines.append(f"{section}:")
        width = max(map(len, values), default=0) + 2
        lines += [f"  {name:<{width}}{json.dumps(value)}" for name, value in values.items()]
    print("\n".join(lines))
    return 0
