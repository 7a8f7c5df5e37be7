"""`mlgen explain`: draw where an attention model looked for each label it predicted."""

from __future__ import annotations

from pathlib import Path

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.errors import InputError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "explain",
        help="draw where an attention model looked for each label",
        description=f"Predict the labels of --text with a {registry.supporting('explains')} model trained with "
        "--attention and draw, per label, the attention weights over the text's tokens into --out (PNG).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder of an --attention model")
    parser.add_argument("--text", required=True, help="the document")
    parser.add_argument("--out", required=True, metavar="PNG", help="figure to write")
    common.add_decoding_arguments(parser, max_labels=False)
    parser.set_defaults(func=run)


def run(args) -> int:
    from mlgen.eval import plots  # matplotlib, only for this command and compare

    artifacts.check_out_file(args.out, "--out")
    if Path(args.out).suffix.lower() not in plots.FORMATS:
        raise InputError(f"{args.out}: --out needs an image file name ending in {', '.join(plots.FORMATS)}")
    entry = registry.entry_of(args.model)  # the model table says which types explain, before loading
    if not entry.explains:
        raise InputError(f"{args.model}: explain needs a {registry.supporting('explains')} model, this is {entry.name}")
    predictor = registry.load(args.model)
    explanation = predictor.explain(args.text, beam_size=args.beam_size)
    with artifacts.atomic_file(args.out) as partial:
        plots.attention(explanation, partial)
    for label, row in zip(explanation.labels, explanation.weights):
        top = [explanation.tokens[i] for i in sorted(range(len(row)), key=lambda i: -row[i])[:5]]
        print(f"{label}: {' '.join(top)}")
    print(f"wrote {args.out}")
    return 0
