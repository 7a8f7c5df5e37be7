"""`mlgen predict`: add predicted labels and their scores to a file, read and written in chunks.

CSV, TSV and JSON Lines in and out (the output's name says which, `.gz` compresses it);
`--input -` reads texts from standard input, one per line, and writes JSON Lines to
standard output, a chunk at a time, for pipes.

`--shard K/N` predicts the K-th of N contiguous parts of the input's data rows, so that
N jobs can share a large file: part 1 alone writes the header, and the N outputs,
concatenated in order (`cat part-1.csv part-2.csv ...`; gzip files concatenate too), are
the one-job output.

Values pass through as they were read: a CSV's cells as text; a JSON Lines line's fields as
parsed (a JSON Lines output writes each line's object again, a field a line lacks still
absent; a CSV output has a column for every field of the input, whichever line first has
it, and writes a string as it is, a missing field or null as an empty cell and any other
value as its JSON text: `5`, `true`, `["a", "b"]`).
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import json
import math
import sys
from pathlib import Path

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.data.reader import MISSING, count_rows, first_surrogate, is_jsonl, read_chunks, shard_rows, survey
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
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=10000,
        help=f"rows read at a time, 1 to {MAX_CHUNK_SIZE:,} (default: 10000)",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="predict only the K-th of N contiguous parts of the data rows (1 <= K <= N); part 1 writes the "
        "header, and the N outputs concatenated in order are the whole output",
    )
    common.add_progress_argument(parser)
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


# The most rows `--chunk-size` may ask for: a chunk's rows, texts and predictions are in memory at once.
MAX_CHUNK_SIZE = 1_000_000


def run(args) -> int:
    if not 1 <= args.chunk_size <= MAX_CHUNK_SIZE:
        raise InputError(
            f"--chunk-size must be between 1 and {MAX_CHUNK_SIZE:,} rows (a chunk is held in memory at once), "
            f"got {args.chunk_size}"
        )
    if args.input == "-":
        if args.shard or args.output not in (None, "-"):
            raise InputError("--input - writes JSON Lines to standard output; drop --output and --shard")
        predictor = registry.load(args.model)
        common.check_decoding(predictor, args.beam_size, args.decision, args.metric)
        return predict_lines(args, predictor)
    if args.output is None:
        raise InputError("--output is required: the file to write (only --input - writes to standard output)")
    shard = parse_shard(args.shard) if args.shard else None
    output = artifacts.check_out_file(args.output, "--output", inputs=(args.input,))
    fmt = common.csv_format(args, run=args.model, path=args.input)
    predictor = registry.load(args.model)
    common.check_decoding(predictor, args.beam_size, args.decision, args.metric)
    columns = None
    if is_jsonl(args.input) and not is_jsonl(output):
        # A CSV's header comes first: a column for every field of the input, whichever line first has it.
        total, columns = survey(args.input, fmt)
    else:
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
                data.texts,
                beam_size=args.beam_size,
                max_labels=args.max_labels,
                decision=args.decision,
                metric=args.metric,
            )
            write(f, frame, predictions, output, fmt.label_sep, header, columns=columns, source=args.input)
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


def write(f, frame, predictions, output, label_sep: str, header: bool, columns=None, source="-") -> None:
    """One chunk's rows and predictions: JSON Lines with lists for a `.jsonl` `output`, else
    CSV (TSV for `.tsv`) with the labels and scores joined by `label_sep`.

    `columns`: the CSV's columns before the predictions' (None: the frame's), which every
    chunk of a JSON Lines input is given (`survey`), a field a line lacks as an empty cell.
    `source` names the input in errors.
    """
    try:
        if is_jsonl(output):
            ascii_only = not _writes_utf8(f)  # JSON escapes what the stream cannot encode
            for record, prediction in zip(frame.to_dict("records"), predictions):
                line = {field: value for field, value in record.items() if value is not MISSING}
                line["predicted_labels"] = prediction.labels
                line["label_scores"] = [round(float(s), 4) if math.isfinite(s) else None for s in prediction.scores]
                f.write(json.dumps(line, ensure_ascii=ascii_only, separators=(",", ":")) + "\n")
            return
        if columns is not None:
            if added := [column for column in frame.columns if column not in columns]:
                raise InputError(
                    f"{source}: field {added[0]!r} appeared while it was being read; do not change the input"
                )
            frame = frame.reindex(columns=columns, fill_value=MISSING)
        frame = frame.assign(
            **{column: frame[column].map(_csv_cell) for column in frame.columns if frame[column].dtype == object},
            predicted_labels=[label_sep.join(p.labels) for p in predictions],
            label_scores=[label_sep.join(f"{s:.4f}" for s in p.scores) for p in predictions],
        )
        frame.to_csv(f, sep="\t" if ".tsv" in output.suffixes else ",", index=False, header=header)
    except UnicodeEncodeError as err:  # the reader refuses such text: a last guard, never a traceback
        raise InputError(
            f"{source}: holds text that is not valid Unicode ({err.reason}: {err.object[err.start : err.end]!r}); "
            f"read it with its real --encoding"
        ) from None


def _csv_cell(value) -> str:
    """A JSON Lines value as a CSV cell: a string as it is, missing or null empty, else its JSON text."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _writes_utf8(f) -> bool:
    """Whether text stream `f` encodes as UTF-8 (a standard output may not)."""
    try:
        return codecs.lookup(getattr(f, "encoding", None) or "utf-8").name == "utf-8"
    except LookupError:
        return False


def predict_lines(args, predictor) -> int:
    """`--input -`: each line of standard input is a text; each prediction is a JSON line on standard
    output, written and flushed a chunk at a time. Blank lines are skipped and counted."""
    import pandas as pd

    written = blank = 0
    progress = Progress("texts", enabled=bool(args.verbose))
    lines = stdin_lines(args.encoding or "utf-8")
    while chunk := list(itertools.islice(lines, args.chunk_size)):
        texts = [line for line in chunk if line.strip()]
        blank += len(chunk) - len(texts)
        predictions = predictor.predict_scores(
            texts, beam_size=args.beam_size, max_labels=args.max_labels, decision=args.decision, metric=args.metric
        )
        write(sys.stdout, pd.DataFrame({"text": texts}), predictions, STDOUT, "|", header=False)
        sys.stdout.flush()
        written += len(texts)
        progress.update(len(chunk))
    progress.close()
    print(f"predicted {written} texts" + (f" ({blank} blank lines skipped)" if blank else ""), file=sys.stderr)
    return 0


STDOUT = Path("-.jsonl")  # what `write` reads the format from for standard output


def stdin_lines(encoding: str = "utf-8"):
    """Standard input's lines without their ends, its bytes decoded as `encoding` (not as the
    locale says), each line as soon as it arrives.

    Raises:
        InputError: naming the first line that is not valid `encoding` (on a text stream
            without bytes: that holds a lone surrogate, what an undecodable byte becomes).
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise InputError(f"--encoding {encoding!r} is not an encoding Python knows; try utf-8 or latin-1") from None
    raw = getattr(sys.stdin, "buffer", None)
    number, pending = 0, ""
    for block in iter(raw.readline, b"") if raw is not None else sys.stdin:
        try:
            pending += decoder.decode(block, final=not block.endswith(b"\n")) if raw is not None else block
        except UnicodeDecodeError as err:
            raise InputError(
                f"standard input: line {number + 1} (byte 0x{err.object[err.start]:02x}) is not valid {encoding} "
                f"({err.reason}); pass its encoding with --encoding, e.g. --encoding latin-1"
            ) from None
        *complete, pending = pending.split("\n")
        for line in complete:
            number += 1
            yield _stdin_text(line, number)
    if pending:
        yield _stdin_text(pending, number + 1)


def _stdin_text(line: str, number: int) -> str:
    at = first_surrogate(line)
    if at is not None:
        raise InputError(
            f"standard input: line {number} is not valid Unicode text (a lone surrogate at character {at + 1}); "
            f"pass its encoding with --encoding"
        )
    return line.rstrip("\r")


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` -> `(K, N)`, or an InputError unless 1 <= K <= N."""
    try:
        shard, num_shards = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must be K/N, two whole numbers such as 2/8, got {text!r}") from None
    if not 1 <= shard <= num_shards:
        raise InputError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return shard, num_shards
