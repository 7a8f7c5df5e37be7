"""`mlgen predict`: add predicted labels and their scores to a CSV, read in chunks."""

from __future__ import annotations

import gzip
import sys

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.data import read_chunks
from mlgen.errors import InputError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="add predicted labels to a CSV",
        description="Read --input in chunks and write it to --output with two more columns: predicted_labels "
        "(joined by --label-sep) and label_scores (each label's score, same order: a probability, or an SVM margin "
        "for linear-br).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    parser.add_argument("--input", required=True, metavar="CSV", help="file with a text column")
    parser.add_argument("--output", required=True, metavar="CSV", help="file to write (.csv, .tsv, .gz)")
    common.add_decoding_arguments(parser)
    common.add_decision_argument(parser)
    parser.add_argument("--chunk-size", type=int, default=10000, help="rows read at a time (default: 10000)")
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    output = artifacts.check_out_file(args.output, "--output", inputs=(args.input,))
    fmt = common.csv_format(args, run=args.model, path=args.input)
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
