"""What the commands share: data-source and CSV-format flags, and reading the data they name."""

from __future__ import annotations

import codecs
import dataclasses
import sys
from pathlib import Path

from mlgen import artifacts, registry
from mlgen.config import DECISION_METRICS, BaselineConfig, Configs, ModelConfig, TrainConfig, add_arguments, from_args
from mlgen.data import CSVFormat, LabelledData, concat, datasets, is_utf8, read_labelled_csv, stream
from mlgen.data.stream import LabelledStream
from mlgen.errors import InputError, first_line
from mlgen.predictors.base import read_config


def add_decision_argument(parser) -> None:
    parser.add_argument(
        "--metric",
        choices=DECISION_METRICS,
        help="decide by the rule fitted on dev for this metric (training fits one for each); default: the one the "
        "model was trained for (`mlgen train --metric`)",
    )
    parser.add_argument(
        "--decision",
        choices=("mode", "marginal", "expected-f1"),
        help=f"{registry.supporting('searches')}: decide by the fitted rule of this name: the most probable label "
        "sequence (mode), the labels whose beam marginal reaches a threshold fitted on dev (marginal), or the set "
        "of largest expected F1 under the beam's hypotheses (expected-f1); default: the --metric's rule",
    )


def check_decoding(predictor, beam_size=None, decision=None, metric=None) -> None:
    """An InputError for `--beam-size` or `--decision` given to a model type that does not search
    (the model table says which do: `mlgen.registry.ModelType.searches`), or for a `--metric`,
    `--decision` or `--beam-size` the model has no rule for; to call once the model is loaded,
    before any work."""
    predictor.entry.check_decoding(beam_size, decision)
    if metric is not None:
        predictor.rule(decision, metric=metric)


def add_data_source(parser) -> None:
    parser.add_argument(
        "--dataset", choices=datasets.names(), help=f"bundled dataset, official splits (default: {datasets.DEFAULT})"
    )


def add_csv_arguments(parser) -> None:
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


def csv_format(args, run=None, path=None) -> CSVFormat:
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


def report(data: LabelledData) -> LabelledData:
    print(data.summary(), file=sys.stderr)
    return data


def training_data(
    args, train_config: TrainConfig, streaming: bool | None = False
) -> tuple[LabelledData | LabelledStream, LabelledData | None]:
    """The training data and dev, if given or streamed.

    `streaming`: True reads `--train` as a `LabelledStream` (`mlgen.data.stream.scan`,
    which also splits off dev); False reads it into memory; None streams when the files
    pass `STREAM_ABOVE_BYTES` and `--model` streams.
    """
    if args.train and args.dataset:
        raise InputError("give either --dataset or --train, not both")
    if args.dev and not args.train:
        raise InputError("--dev goes with --train; a bundled --dataset brings its own dev split (or --dev-fraction)")
    if streaming and not args.train:
        raise InputError("--stream reads --train files; the bundled datasets fit in memory")
    if args.train:
        check_not_folder(args.train, "--train")
        fmt = csv_format(args)
        paths = stream.expand(args.train)
        if streaming is not False and _streams(args.model, streaming, paths):
            train, dev = stream.scan(
                args.train, fmt, dev_fraction=None if args.dev else train_config.dev_fraction, seed=train_config.seed
            )
            print(train.summary_line(), file=sys.stderr)
            dev = report(read_files(args.dev, fmt, "--dev")) if args.dev else report(dev)
            return train, dev
        train = report(read_files(args.train, fmt, "--train"))
        dev = report(read_files(args.dev, fmt, "--dev")) if args.dev else None
        return train, dev
    name = args.dataset or datasets.DEFAULT
    train = report(datasets.read(name, "train"))
    dev = report(datasets.read(name, "dev")) if "dev" in datasets.splits(name) else None
    return train, dev


def read_files(pattern, fmt: CSVFormat, flag: str) -> LabelledData:
    """The labelled file, or quoted glob of files, that `flag` names, read into memory one file
    after the other (each row keeps its file, for messages: `LabelledData.files`)."""
    check_not_folder(pattern, flag)
    files = [read_labelled_csv(path, fmt) for path in stream.expand(pattern)]
    return files[0] if len(files) == 1 else concat(files, str(pattern))


# What names a file the reader reads: its data suffix, then perhaps a compression suffix.
_DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def check_not_folder(value, flag: str) -> None:
    """An InputError when `flag`'s value `value` (a file or a glob) is a folder: it says so and
    gives the quoted glob of the data files in it (`--train 'DIR/*.csv.gz'`)."""
    folder = Path(value)
    if not folder.is_dir():
        return
    suffixes = {}
    for entry in sorted(folder.iterdir()):
        data = [i for i, suffix in enumerate(entry.suffixes) if suffix in _DATA_SUFFIXES]
        if entry.is_file() and data:
            suffix = "".join(entry.suffixes[data[-1] :])
            suffixes[suffix] = suffixes.get(suffix, 0) + 1
    suffix = max(suffixes, key=suffixes.get) if suffixes else ".csv"  # the most common, else the first seen
    counts = " and ".join(f"{n} {kind}" for kind, n in suffixes.items())
    found = f"it holds {counts} files" if suffixes else "it holds no .csv, .tsv or .jsonl file"
    raise InputError(
        f"{flag} {value}: is a folder, not a file ({found}); pass its files as a quoted glob, "
        f"e.g. {flag} '{folder / ('*' + suffix)}'"
    )


def _streams(model_type: str, streaming: bool | None, paths) -> bool:
    streams = registry.get(model_type).streams
    if streaming and not streams:
        raise InputError(f"--stream trains {registry.supporting('streams')}; --model {model_type} fits in memory")
    if streaming is not None:
        return streaming
    return streams and stream.total_bytes(paths) > stream.STREAM_ABOVE_BYTES


def add_config_arguments(parser, baseline_title: str) -> None:
    """One flag per field of the three configs (`mlgen.config.add_arguments`), in three groups."""
    add_arguments(parser, ModelConfig, "model hyperparameters")
    add_arguments(parser, TrainConfig, "training")
    add_arguments(parser, BaselineConfig, baseline_title)


def configs(args) -> Configs:
    """The three configs with every flag the user set (`mlgen.config.from_args`)."""
    return Configs(from_args(ModelConfig, args), from_args(TrainConfig, args), from_args(BaselineConfig, args))


def add_decoding_arguments(parser, max_labels: bool = True) -> None:
    """`--beam-size` (and `--max-labels`): how a trained model decodes, overriding what it was trained with."""
    parser.add_argument(
        "--beam-size", type=int, help=f"{registry.supporting('searches')}: beam size (default: the model's)"
    )
    if max_labels:
        parser.add_argument("--max-labels", type=int, help="most labels per document (default: the model's)")


def add_verbose_argument(parser, default, default_help: str) -> None:
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=default,
        help=f"Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch (default: {default_help})",
    )


def add_progress_argument(parser) -> None:
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1),
        default=1,
        help="1: progress on standard error (rows done, rows/s, time left; only for work longer than a few "
        "seconds), 0: quiet (default: 1)",
    )


# Documents predicted at a time by `predict_blocks` (between progress reports).
BLOCK_DOCS = 2048


def predict_blocks(predictor, texts, progress, *, ranking: bool = False, **decoding):
    """`predictor.predict_ranked(texts, **decoding)` a block at a time, reporting to `progress`:
    the predictions and, with `ranking`, every label's score `(len(texts), num_labels)` from the
    same run of the prediction function, else None."""
    import numpy as np

    check_decoding(predictor, decoding.get("beam_size"), decoding.get("decision"), decoding.get("metric"))
    predictions, scores = [], []
    for start in range(0, len(texts), BLOCK_DOCS):
        block = texts[start : start + BLOCK_DOCS]
        block_predictions, block_scores = predictor.predict_ranked(block, ranking=ranking, **decoding)
        predictions += block_predictions
        if ranking:
            scores.append(block_scores)
        progress.update(len(block))
    progress.close()
    if not ranking:
        return predictions, None
    return predictions, np.concatenate(scores) if scores else np.zeros((0, len(predictor.labels)))
