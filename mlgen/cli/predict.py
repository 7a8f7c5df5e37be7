"""`mlgen predict`: add predicted labels and their scores to a file, read and written in chunks.

CSV, TSV and JSON Lines in and out (the output's name says which, `.gz` compresses it);
`--input -` reads texts from standard input, one per line, and writes JSON Lines to
standard output, a chunk at a time, for pipes.

`--shard K/N` predicts the K-th of N contiguous parts of the input's data rows, so that
N jobs can share a large file: part 1 alone writes the header, and the N outputs,
concatenated in order (`cat part-1.csv part-2.csv ...`; gzip files concatenate too), are
the one-job output.
"""

from __future__ import annotations

import gzip
import itertools
import sys
from pathlib import Path

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.data.reader import count_rows, is_jsonl, read_chunks, shard_rows
from mlgen.errors import InputError
from mlgen.progress import Progress


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict",
        help="add predicted labels to a CSV",
        description="Read --input in chunks and write it to --output with two more columns: predicted_labels "
        "(joined by --label-sep) and label_scores (each label's score, same order: a probability, or an SVM margin "
        "for linear-br).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    parser.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="file with a text column or field (.csv, .tsv, .jsonl, optionally .gz), or - for standard input: "
        "one text per line, JSON Lines to standard output",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="file to write (.csv, .tsv or .jsonl, optionally .gz; JSON Lines get lists); required unless --input -",
    )
    common.add_decoding_arguments(parser)
    common.add_decision_argument(parser)
    parser.add_argument("--chunk-size", type=int, default=10000, help="rows read at a time (default: 10000)")
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="predict only the K-th of N contiguous parts of the data rows (1 <= K <= N); part 1 writes the "
        "header, and the N outputs concatenated in order are the whole output",
    )
    common.add_progress_argument(parser)
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.input == "-":
        if args.shard or args.output not in (None, "-"):
            raise InputError("--input - writes JSON Lines to standard output; drop --output and --shard")
        return predict_lines(args, registry.load(args.model))
    if args.output is None:
        raise InputError("--output is required: the file to write (only --input - writes to standard output)")
    shard = parse_shard(args.shard) if args.shard else None
    output = artifacts.check_out_file(args.output, "--output", inputs=(args.input,))
    fmt = common.csv_format(args, run=args.model, path=args.input)
    predictor = registry.load(args.model)
    total = count_rows(args.input, fmt) if shard or args.verbose else None  # counted for the time left
    rows = shard_rows(total, *shard) if shard else None
    progress = Progress("rows", rows[1] - rows[0] + 1 if shard else total, enabled=bool(args.verbose))
    opener = gzip.open if output.suffix == ".gz" else open
    written = dropped = 0
    header = shard is None or shard[0] == 1
    with artifacts.atomic_file(output) as partial, opener(partial, "wt", encoding="utf-8", newline="") as f:
        chunks = read_chunks(args.input, fmt, with_labels=False, chunksize=args.chunk_size, rows=rows)
        for frame, data in chunks:
            predictions = predictor.predict_scores(
                data.texts, beam_size=args.beam_size, max_labels=args.max_labels, decision=args.decision
            )
            write(f, frame, predictions, output, fmt.label_sep, header)
            header = False
            written += len(frame)
            dropped += data.num_dropped
            progress.update(len(frame) + data.num_dropped)
            if data.num_dropped:
                print(data.summary(), file=sys.stderr)
    progress.close()
    part = f" (part {shard[0]}/{shard[1]}: data rows {rows[0]} to {rows[1]})" if shard else ""
    print(f"wrote {written} rows to {output}{part}" + (f" ({dropped} invalid rows dropped)" if dropped else ""))
    return 0


def write(f, frame, predictions, output, label_sep: str, header: bool) -> None:
    """One chunk's rows and predictions: JSON Lines with lists for a `.jsonl` `output`, else
    CSV (TSV for `.tsv`) with the labels and scores joined by `label_sep`."""
    if is_jsonl(output):
        frame = frame.assign(
            predicted_labels=[p.labels for p in predictions],
            label_scores=[[round(float(s), 4) for s in p.scores] for p in predictions],
        )
        if len(frame):
            f.write(frame.to_json(orient="records", lines=True, force_ascii=False).rstrip("\n") + "\n")
        return
    frame = frame.assign(
        predicted_labels=[label_sep.join(p.labels) for p in predictions],
        label_scores=[label_sep.join(f"{s:.4f}" for s in p.scores) for p in predictions],
    )
    frame.to_csv(f, sep="\t" if ".tsv" in output.suffixes else ",", index=False, header=header)


def predict_lines(args, predictor) -> int:
    """`--input -`: each line of standard input is a text; each prediction is a JSON line on standard
    output, written and flushed a chunk at a time. Blank lines are skipped and counted."""
    import pandas as pd

    written = blank = 0
    progress = Progress("texts", enabled=bool(args.verbose))
    lines = (line.rstrip("\r\n") for line in sys.stdin)
    while chunk := list(itertools.islice(lines, args.chunk_size)):
        texts = [line for line in chunk if line.strip()]
        blank += len(chunk) - len(texts)
        predictions = predictor.predict_scores(
            texts, beam_size=args.beam_size, max_labels=args.max_labels, decision=args.decision
        )
        write(sys.stdout, pd.DataFrame({"text": texts}), predictions, STDOUT, "|", header=False)
        sys.stdout.flush()
        written += len(texts)
        progress.update(len(chunk))
    progress.close()
    print(f"predicted {written} texts" + (f" ({blank} blank lines skipped)" if blank else ""), file=sys.stderr)
    return 0


STDOUT = Path("-.jsonl")  # what `write` reads the format from for standard output


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` -> `(K, N)`, or an InputError unless 1 <= K <= N."""
    try:
        shard, num_shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must be K/N, two whole numbers such as 2/8, got {text!r}") from None
    if not 1 <= shard <= num_shards:
        raise InputError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return shard, num_shards
