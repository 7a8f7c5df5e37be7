"""`mlgen compare`: cnn-rnn against the binary-relevance baselines over seeds."""

from __future__ import annotations

from pathlib import Path

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.config import DECISION_METRICS
from mlgen.data import datasets, read_labelled_csv
from mlgen.errors import InputError

MODELS = tuple(registry.MODEL_TYPES)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare cnn-rnn with the binary-relevance baselines over seeds",
        description="Train cnn-rnn, cnn-br and linear-br (--models) with seeds 0..N-1 on a bundled --dataset or "
        "--train CSV, score each on its test split or --test CSV, and write results.csv, results.md, runs.csv, "
        "per_label_f1.csv and PNG plots into --out. Hyperparameter flags apply to every model that reads them.",
    )
    common.add_data_source(parser)
    parser.add_argument("--train", metavar="CSV", help="labelled training file")
    parser.add_argument("--dev", metavar="CSV", help="labelled dev file (default: --dev-fraction of train)")
    parser.add_argument("--test", metavar="CSV", help="labelled test file (with --train)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per model, seeds 0..N-1 (default: 3)")
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated model types (default: {','.join(MODELS)})"
    )
    parser.add_argument(
        "--metrics",
        default=",".join(DECISION_METRICS),
        help="comma-separated decision metrics: each model is scored under the decision it fitted on dev for each, "
        f"a table apiece (default: {','.join(DECISION_METRICS)})",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced atomically)")
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0 quiet; 1 a line per run with the runs done and the time left; 2 also Keras's line per epoch "
        "(default: 1)",
    )
    common.add_config_arguments(parser, "binary-relevance baselines")
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise InputError(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    decision_metrics = tuple(dict.fromkeys(m.strip() for m in args.metrics.split(",") if m.strip()))
    unknown = [m for m in decision_metrics if m not in DECISION_METRICS]
    if unknown or not decision_metrics:
        raise InputError(
            f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(DECISION_METRICS)}"
        )
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    if args.test and not args.train:
        raise InputError("--test goes with --train; a bundled --dataset brings its own test split")
    if args.train and not args.test:
        raise InputError("--train needs --test: the compared models are scored on it")
    configs = common.configs(args)
    from mlgen.compare import FOLDER, compare  # matplotlib, only for this command

    artifacts.check_out_dir(args.out, FOLDER, inputs=(args.train, args.dev, args.test))
    train, dev = common.training_data(args, configs.train)
    if args.train:
        test = common.report(read_labelled_csv(args.test, common.csv_format(args)))
    else:
        test = common.report(datasets.read(args.dataset or datasets.DEFAULT, "test"))
    compare(
        train,
        test,
        args.out,
        dev,
        seeds=args.seeds,
        models=models,
        model_config=configs.model,
        train_config=configs.train,
        baseline_config=configs.baseline,
        decision_metrics=decision_metrics,
        verbose=args.verbose,
    )
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}")
    return 0
