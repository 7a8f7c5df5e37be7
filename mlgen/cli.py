"""`mlgen train | evaluate | predict | compare | explain`: argument parsing and reporting only.

TensorFlow is imported inside the commands that need it, so `mlgen --help` and bad
input errors come back fast. Any `InputError` prints as one line, `mlgen: error: ...`,
with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import gzip
import json
import sys
from pathlib import Path

from mlgen import __version__, datasets, registry
from mlgen.config import (
    CNN_BR_FIELDS,
    LINEAR_FIELDS,
    BaselineConfig,
    ModelConfig,
    TrainConfig,
    add_arguments,
    from_args,
)
from mlgen.data import CSVFormat, LabelledData, is_utf8, read_chunks, read_labelled_csv
from mlgen.errors import InputError, first_line

MODELS = registry.MODEL_TYPES
# The config fields each model type reads; a flag outside them is an error, not ignored.
_FIELDS = {
    "cnn-rnn": {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)} | set(LINEAR_FIELDS),
    "cnn-br": {*CNN_BR_FIELDS, *(f.name for f in dataclasses.fields(TrainConfig))}
    | {f.name for f in dataclasses.fields(BaselineConfig)},  # linear-br's fields: its ensemble
    "linear-br": {f.name for f in dataclasses.fields(BaselineConfig)} | {"seed", "dev_fraction"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlgen",
        description="Multi-label text classification as label-sequence generation (CNN encoder, RNN decoder).",
    )
    parser.add_argument("--version", action="version", version=f"mlgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model on a labelled CSV or a bundled dataset",
        description="Train on --train CSV (dev: --dev CSV, or --dev-fraction of train) or on a bundled --dataset "
        f"(default: {datasets.DEFAULT}). Writes the run folder --out atomically.",
    )
    _add_data_source(train)
    train.add_argument("--train", metavar="CSV", help="labelled training file (.csv, .tsv, optionally .gz)")
    train.add_argument("--dev", metavar="CSV", help="labelled dev file for early stopping")
    train.add_argument(
        "--model",
        default="cnn-rnn",
        choices=MODELS,
        help="cnn-rnn (label-sequence generation), or the binary-relevance baselines cnn-br (same encoder, one "
        "sigmoid per label) and linear-br (TF-IDF + linear classifiers); default: cnn-rnn",
    )
    train.add_argument("--out", required=True, metavar="DIR", help="run folder to write (replaced atomically)")
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch (default: 1 on a terminal, else 2)",
    )
    add_arguments(train, ModelConfig, "model hyperparameters")
    add_arguments(train, TrainConfig, "training")
    add_arguments(train, BaselineConfig, "binary-relevance baselines (--model cnn-br, linear-br)")
    _add_csv_arguments(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained model on labelled data",
        description=f"Decode labelled data and print micro/macro/samples F1, Hamming loss, subset accuracy and "
        f"micro P/R. Data: --data CSV or --dataset NAME --split SPLIT (default: {datasets.DEFAULT} test).",
    )
    evaluate.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    _add_data_source(evaluate)
    evaluate.add_argument("--split", default="test", help="split of --dataset (default: test)")
    evaluate.add_argument("--data", metavar="CSV", help="labelled file to evaluate on")
    evaluate.add_argument("--beam-size", type=int, help="beam size (default: the model's)")
    evaluate.add_argument("--max-labels", type=int, help="most labels per document (default: the model's)")
    _add_decision_argument(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    evaluate.add_argument(
        "--per-label", metavar="CSV", help="also write per-label support, predicted count, precision, recall, F1"
    )
    _add_csv_arguments(evaluate)
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="add predicted labels to a CSV",
        description="Read --input in chunks and write it to --output with two more columns: predicted_labels "
        "(joined by --label-sep) and label_scores (each label's score, same order: a probability, or an SVM margin "
        "for linear-br).",
    )
    predict.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    predict.add_argument("--input", required=True, metavar="CSV", help="file with a text column")
    predict.add_argument("--output", required=True, metavar="CSV", help="file to write (.csv, .tsv, .gz)")
    predict.add_argument("--beam-size", type=int, help="beam size (default: the model's)")
    predict.add_argument("--max-labels", type=int, help="most labels per document (default: the model's)")
    _add_decision_argument(predict)
    predict.add_argument("--chunk-size", type=int, default=10000, help="rows read at a time (default: 10000)")
    _add_csv_arguments(predict)
    predict.set_defaults(func=_predict)

    explain = commands.add_parser(
        "explain",
        help="draw where an attention model looked for each label",
        description="Predict the labels of --text with a cnn-rnn model trained with --attention and draw, per "
        "label, the attention weights over the text's tokens into --out (PNG).",
    )
    explain.add_argument("--model", required=True, metavar="DIR", help="run folder of an --attention model")
    explain.add_argument("--text", required=True, help="the document")
    explain.add_argument("--out", required=True, metavar="PNG", help="figure to write")
    explain.add_argument("--beam-size", type=int, help="beam size (default: the model's)")
    explain.set_defaults(func=_explain)

    compare = commands.add_parser(
        "compare",
        help="compare cnn-rnn with the binary-relevance baselines over seeds",
        description="Train cnn-rnn, cnn-br and linear-br (--models) with seeds 0..N-1 on a bundled --dataset or "
        "--train CSV, score each on its test split or --test CSV, and write results.csv, results.md, runs.csv, "
        "per_label_f1.csv and PNG plots into --out. Hyperparameter flags apply to every model that reads them.",
    )
    _add_data_source(compare)
    compare.add_argument("--train", metavar="CSV", help="labelled training file")
    compare.add_argument("--dev", metavar="CSV", help="labelled dev file (default: --dev-fraction of train)")
    compare.add_argument("--test", metavar="CSV", help="labelled test file (with --train)")
    compare.add_argument("--seeds", type=int, default=3, help="runs per model, seeds 0..N-1 (default: 3)")
    compare.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated model types (default: {','.join(MODELS)})"
    )
    compare.add_argument("--out", required=True, metavar="DIR", help="folder to write (replaced atomically)")
    compare.add_argument("--verbose", type=int, choices=(0, 1, 2), default=0, help="Keras verbosity (default: 0)")
    add_arguments(compare, ModelConfig, "model hyperparameters")
    add_arguments(compare, TrainConfig, "training")
    add_arguments(compare, BaselineConfig, "binary-relevance baselines")
    _add_csv_arguments(compare)
    compare.set_defaults(func=_compare)
    return parser


def main(argv=None) -> int:
    """Runs one command; `argv` items may be paths. Returns the exit status."""
    args = build_parser().parse_args(None if argv is None else [str(a) for a in argv])
    try:
        return args.func(args)
    except InputError as err:
        print(f"mlgen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlgen: interrupted", file=sys.stderr)
        return 130


def _add_decision_argument(parser) -> None:
    parser.add_argument(
        "--decision",
        choices=("mode", "marginal"),
        help="cnn-rnn: the most probable label sequence (mode: best for subset accuracy), or the labels whose beam "
        "marginal reaches the threshold fitted on dev (marginal); default: the rule the model chose on dev",
    )


def _add_data_source(parser) -> None:
    parser.add_argument(
        "--dataset", choices=datasets.names(), help=f"bundled dataset, official splits (default: {datasets.DEFAULT})"
    )


def _add_csv_arguments(parser) -> None:
    group = parser.add_argument_group(
        "CSV format (evaluate and predict default to the format of the model's training CSV)"
    )
    default = CSVFormat()
    group.add_argument("--text-column", help=f"text column (default: {default.text_column})")
    group.add_argument("--labels-column", help=f"labels column (default: {default.labels_column})")
    group.add_argument("--label-sep", help=f"separator between labels (default: {default.label_sep})")
    group.add_argument(
        "--label-columns", metavar="A,B,...", help="one-hot 0/1 label columns instead of --labels-column"
    )
    group.add_argument("--encoding", help=f"file encoding (default: {default.encoding})")
    group.add_argument("--allow-empty-labels", action="store_true", help="accept documents with no label")
    group.add_argument("--drop-invalid", action="store_true", help="drop invalid rows (each drop is counted)")


# CSV flags a run folder remembers from its training file (`config.json`, data.csv_format).
_REMEMBERED_CSV = ("text_column", "labels_column", "label_sep", "label_columns", "encoding")


def _csv_format(args, run=None, path=None) -> CSVFormat:
    """The CSV flags given; the others from the run folder `run`'s training CSV, if it
    was trained from one, else the defaults.

    Flags given now win: `--labels-column` or `--label-sep` alone also replace one-hot
    columns the model remembers. A remembered encoding other than UTF-8 is used only
    when `path` is not valid UTF-8 (a UTF-8 file is read as such, and the user told).
    """
    fields = {name: getattr(args, name) for name in _REMEMBERED_CSV}
    if fields["label_columns"] is not None:
        fields["label_columns"] = tuple(c.strip() for c in fields["label_columns"].split(","))
    if run is not None:
        from mlgen import artifacts
        from mlgen.predict import read_config

        folder = artifacts.check_run_dir(run)
        saved = read_config(folder).get("data", {}).get("csv_format") or {}
        try:
            saved = CSVFormat(**{name: saved[name] for name in _REMEMBERED_CSV if saved.get(name) is not None})
        except (TypeError, InputError) as err:
            raise artifacts.damaged(
                folder, artifacts.CONFIG, f"has a bad data.csv_format ({first_line(err)})"
            ) from None
        if fields["labels_column"] is not None or fields["label_sep"] is not None:
            saved = dataclasses.replace(saved, label_columns=None)  # a joined labels column now, whatever the model saw
        remembered = {name: getattr(saved, name) for name in _REMEMBERED_CSV if fields[name] is None}
        if "encoding" in remembered and path is not None and not _is_utf8_name(saved.encoding) and is_utf8(path):
            print(
                f"{path}: valid UTF-8, so read as UTF-8, not as the model's training encoding {saved.encoding}; "
                f"pass --encoding to choose",
                file=sys.stderr,
            )
            remembered["encoding"] = "utf-8"
        fields.update(remembered)
    return CSVFormat(
        **{name: value for name, value in fields.items() if value is not None},
        allow_empty_labels=args.allow_empty_labels,
        drop_invalid=args.drop_invalid,
    )


def _is_utf8_name(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False  # the reader names the unknown encoding


def _report(data: LabelledData) -> LabelledData:
    print(data.summary(), file=sys.stderr)
    return data


def _training_data(args) -> tuple[LabelledData, LabelledData | None]:
    if args.train and args.dataset:
        raise InputError("give either --dataset or --train, not both")
    if args.dev and not args.train:
        raise InputError("--dev goes with --train; a bundled --dataset brings its own dev split (or --dev-fraction)")
    if args.train:
        fmt = _csv_format(args)
        train = _report(read_labelled_csv(args.train, fmt))
        dev = _report(read_labelled_csv(args.dev, fmt)) if args.dev else None
        return train, dev
    name = args.dataset or datasets.DEFAULT
    train = _report(datasets.read(name, "train"))
    dev = _report(datasets.read(name, "dev")) if "dev" in datasets.splits(name) else None
    return train, dev


def _check_flags(args) -> None:
    """Refuses hyperparameter flags that the chosen --model would ignore."""
    given = [
        f.name
        for cls in (ModelConfig, TrainConfig, BaselineConfig)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    ]
    used, by = _FIELDS[args.model], f"--model {args.model}"
    if args.model != "linear-br" and args.ensemble == "none":
        used, by = used - set(LINEAR_FIELDS), f"{by} --ensemble none"  # they configure the ensemble
    unused = [name for name in given if name not in used]
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise InputError(f"{flags}: not used by {by}; see `mlgen train --help`")


def _train(args) -> int:
    _check_flags(args)
    model_config = from_args(ModelConfig, args)
    train_config = from_args(TrainConfig, args)
    baseline_config = from_args(BaselineConfig, args)
    from mlgen import artifacts

    artifacts.check_out_dir(args.out, inputs=(args.train, args.dev))
    train, dev = _training_data(args)
    with artifacts.atomic_dir(args.out) as staging:
        predictor = registry.fit(
            args.model,
            train,
            dev,
            model_config,
            train_config,
            baseline_config,
            log_dir=staging / artifacts.LOGS,
            # A progress bar on a terminal; one line per epoch in logs and pipes.
            verbose=args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2),
        )
        if args.train:
            predictor.config["data"]["csv_format"] = _csv_format(args).to_dict()
        predictor.write(staging)
    m = predictor.metrics
    epochs = f"{m['epochs_run']} epochs, kept epoch {m['best_epoch']}; " if "epochs_run" in m else ""
    print(
        f"trained {args.model} in {m['train_seconds']:.0f} s; {epochs}"
        f"dev micro-F1 {m['dev'].get('micro_f1', float('nan')):.4f}; saved {args.out}"
    )
    return 0


def _compare(args) -> int:
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise InputError(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    if args.test and not args.train:
        raise InputError("--test goes with --train; a bundled --dataset brings its own test split")
    if args.train and not args.test:
        raise InputError("--train needs --test: the compared models are scored on it")
    model_config = from_args(ModelConfig, args)
    train_config = from_args(TrainConfig, args)
    baseline_config = from_args(BaselineConfig, args)
    from mlgen import artifacts
    from mlgen.compare import FOLDER, compare

    artifacts.check_out_dir(args.out, FOLDER, inputs=(args.train, args.dev, args.test))
    train, dev = _training_data(args)
    if args.train:
        test = _report(read_labelled_csv(args.test, _csv_format(args)))
    else:
        test = _report(datasets.read(args.dataset or datasets.DEFAULT, "test"))
    compare(
        train,
        test,
        args.out,
        dev,
        seeds=args.seeds,
        models=models,
        model_config=model_config,
        train_config=train_config,
        baseline_config=baseline_config,
        verbose=args.verbose,
    )
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {args.out}")
    return 0


def _explain(args) -> int:
    from mlgen import artifacts, plots

    artifacts.check_out_file(args.out, "--out")
    if Path(args.out).suffix.lower() not in plots.FORMATS:
        raise InputError(f"{args.out}: --out needs an image file name ending in {', '.join(plots.FORMATS)}")
    predictor = registry.load(args.model)
    if predictor.model_type != "cnn-rnn":
        raise InputError(f"{args.model}: explain needs a cnn-rnn model, this is {predictor.model_type}")
    explanation = predictor.explain(args.text, beam_size=args.beam_size)
    with artifacts.atomic_file(args.out) as partial:
        plots.attention(explanation, partial)
    for label, row in zip(explanation.labels, explanation.weights):
        top = [explanation.tokens[i] for i in sorted(range(len(row)), key=lambda i: -row[i])[:5]]
        print(f"{label}: {' '.join(top)}")
    print(f"wrote {args.out}")
    return 0


def _evaluation_data(args) -> LabelledData:
    if args.data and args.dataset:
        raise InputError("give either --dataset or --data, not both")
    if args.data:
        return _report(read_labelled_csv(args.data, _csv_format(args, run=args.model, path=args.data)))
    return _report(datasets.read(args.dataset or datasets.DEFAULT, args.split))


def _evaluate(args) -> int:
    from mlgen import artifacts, metrics

    artifacts.check_run_dir(args.model)
    if args.per_label:
        artifacts.check_out_file(args.per_label, "--per-label", inputs=(args.data,))
    data = _evaluation_data(args)
    predictor = registry.load(args.model)
    report = predictor.vocab.unknown_report(data)
    if report:
        print(report, file=sys.stderr)
    predicted = predictor.predict(
        data.texts, beam_size=args.beam_size, max_labels=args.max_labels, decision=args.decision
    )
    scores = metrics.evaluate(data.label_sets, predicted, predictor.labels)
    scores["decision"] = args.decision or predictor.decision_rule
    scores["ensemble"] = predictor.ensemble_weights
    if args.per_label:
        table = metrics.per_label(data.label_sets, predicted, predictor.labels)
        with artifacts.atomic_file(args.per_label) as partial:
            table.to_csv(partial, index=False, float_format="%.4f")
        print(f"wrote {len(table)} labels to {args.per_label}", file=sys.stderr)
    if args.json:
        print(json.dumps(scores))
    else:
        print(f"{data.source} ({scores['n_docs']} documents)")
        print(metrics.format_scores(scores))
    return 0


def _predict(args) -> int:
    from mlgen import artifacts

    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    output = artifacts.check_out_file(args.output, "--output", inputs=(args.input,))
    fmt = _csv_format(args, run=args.model, path=args.input)
    predictor = registry.load(args.model)
    sep = "\t" if ".tsv" in output.suffixes else ","
    opener = gzip.open if output.suffix == ".gz" else open
    written = dropped = 0
    header = True
    with artifacts.atomic_file(output) as partial, opener(partial, "wt", encoding="utf-8", newline="") as f:
        for frame, data in read_chunks(args.input, fmt, with_labels=False, chunksize=args.chunk_size):
            predictions = predictor.predict_scores(
                data.texts, beam_size=args.beam_size, max_labels=args.max_labels, decision=args.decision
            )
            frame = frame.assign(
                predicted_labels=[fmt.label_sep.join(p.labels) for p in predictions],
                label_scores=[fmt.label_sep.join(f"{s:.4f}" for s in p.scores) for p in predictions],
            )
            frame.to_csv(f, sep=sep, index=False, header=header)
            header = False
            written += len(frame)
            dropped += data.num_dropped
            if data.num_dropped:
                print(data.summary(), file=sys.stderr)
    print(f"wrote {written} rows to {output}" + (f" ({dropped} invalid rows dropped)" if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
