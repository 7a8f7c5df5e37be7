"""`mlgen train`: fit one model type on a labelled CSV or a bundled dataset."""

from __future__ import annotations

import dataclasses
import sys

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig
from mlgen.data import datasets
from mlgen.errors import InputError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model on a labelled CSV or a bundled dataset",
        description="Train on --train CSV (dev: --dev CSV, or --dev-fraction of train) or on a bundled --dataset "
        f"(default: {datasets.DEFAULT}). Writes the run folder --out atomically.",
    )
    common.add_data_source(parser)
    parser.add_argument("--train", metavar="CSV", help="labelled training file (.csv, .tsv, optionally .gz)")
    parser.add_argument("--dev", metavar="CSV", help="labelled dev file for early stopping")
    parser.add_argument(
        "--model",
        default=registry.DEFAULT,
        choices=list(registry.MODEL_TYPES),
        help="; ".join(f"{name}: {entry.help}" for name, entry in registry.MODEL_TYPES.items())
        + f" (default: {registry.DEFAULT})",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="run folder to write (replaced atomically)")
    common.add_verbose_argument(parser, default=None, default_help="1 on a terminal, else 2")
    common.add_config_arguments(parser, "binary-relevance baselines (--model cnn-br, linear-br) and the ensemble")
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def check_flags(args) -> None:
    """Refuses hyperparameter flags that the chosen --model would ignore (its `registry` entry's fields)."""
    given = [
        f.name
        for cls in (ModelConfig, TrainConfig, BaselineConfig)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    ]
    entry = registry.get(args.model)
    ensemble = args.ensemble or ModelConfig.ensemble
    used = {name for names in entry.fields(ensemble).values() for name in names}
    by = f"--model {args.model}" + (" --ensemble none" if entry.ensemble and ensemble == "none" else "")
    unused = [name for name in given if name not in used]
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise InputError(f"{flags}: not used by {by}; see `mlgen train --help`")


def run(args) -> int:
    check_flags(args)
    configs = common.configs(args)
    artifacts.check_out_dir(args.out, inputs=(args.train, args.dev))
    train, dev = common.training_data(args)
    with artifacts.atomic_dir(args.out) as staging:
        predictor = registry.fit(
            args.model,
            train,
            dev,
            configs.model,
            configs.train,
            configs.baseline,
            log_dir=staging / artifacts.LOGS,
            # A progress bar on a terminal; one line per epoch in logs and pipes.
            verbose=args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2),
        )
        if args.train:
            predictor.config["data"]["csv_format"] = common.csv_format(args).to_dict()
        predictor.write(staging)
    m = predictor.metrics
    epochs = f"{m['epochs_run']} epochs, kept epoch {m['best_epoch']}; " if "epochs_run" in m else ""
    print(
        f"trained {args.model} in {m['train_seconds']:.0f} s; {epochs}"
        f"dev micro-F1 {m['dev'].get('micro_f1', float('nan')):.4f}; saved {args.out}"
    )
    return 0
