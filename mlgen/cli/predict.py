"""`mlgen predict`: add predicted labels and their scores to a CSV, read and written in chunks.

`--shard K/N` predicts the K-th of N contiguous parts of the input's data rows, so that
N jobs can share a large file: part 1 alone writes the header, and the N outputs,
concatenated in order (`cat part-1.csv part-2.csv ...`; gzip files concatenate too), are
the one-job output.
"""

from __future__ import annotations

import gzip
import sys

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.data.reader import count_rows, read_chunks, shard_rows
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
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="predict only the K-th of N contiguous parts of the data rows (1 <= K <= N); part 1 writes the "
        "header, and the N outputs concatenated in order are the whole output",
    )
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    shard = parse_shard(args.shard) if args.shard else None
    output = artifacts.check_out_file(args.output, "--output", inputs=(args.input,))
    fmt = common.csv_format(args, run=args.model, path=args.input)
    predictor = registry.load(args.model)
    rows = shard_rows(count_rows(args.input, fmt), *shard) if shard else None
    sep = "\t" if ".tsv" in output.suffixes else ","
    opener = gzip.open if output.suffix == ".gz" else open
    written = dropped = 0
    header = shard is None or shard[0] == 1
    with artifacts.atomic_file(output) as partial, opener(partial, "wt", encoding="utf-8", newline="") as f:
        chunks = read_chunks(args.input, fmt, with_labels=False, chunksize=args.chunk_size, rows=rows)
        for frame, data in chunks:
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
    part = f" (part {shard[0]}/{shard[1]}: data rows {rows[0]} to {rows[1]})" if shard else ""
    print(f"wrote {written} rows to {output}{part}" + (f" ({dropped} invalid rows dropped)" if dropped else ""))
    return 0


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` -> `(K, N)`, or an InputError unless 1 <= K <= N."""
    try:
        shard, num_shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must be K/N, two whole numbers such as 2/8, got {text!r}") from None
    if not 1 <= shard <= num_shards:
        raise InputError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return shard, num_shards
