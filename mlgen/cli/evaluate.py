"""`mlgen evaluate`: score a trained model on labelled data."""

from __future__ import annotations

import json
import sys

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.data import LabelledData, datasets, stream
from mlgen.decisions import policy
from mlgen.errors import InputError
from mlgen.progress import Progress


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score a trained model on labelled data",
        description=f"Decode labelled data and print micro/macro/samples F1, Hamming loss, subset accuracy, "
        f"micro P/R, P@1/3/5 and nDCG@3/5 of the labels ranked by score, and the expected calibration error of "
        f"the probabilities predict_proba gives (ece: the scores calibrated on dev) and of the scores themselves "
        f"(ece_scores: when they are probabilities). "
        f"Data: --data CSV or --dataset NAME --split SPLIT (default: {datasets.DEFAULT} test).",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    common.add_data_source(parser)
    parser.add_argument("--split", default="test", help="split of --dataset (default: test)")
    parser.add_argument(
        "--data", metavar="FILE", help="labelled file to evaluate on, or a quoted glob of files ('shards/*.csv.gz')"
    )
    common.add_decoding_arguments(parser)
    common.add_decision_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    common.add_progress_argument(parser)
    parser.add_argument(
        "--per-label", metavar="CSV", help="also write per-label support, predicted count, precision, recall, F1"
    )
    common.add_csv_arguments(parser)
    parser.set_defaults(func=run)


def evaluation_data(args) -> LabelledData:
    if args.data and args.dataset:
        raise InputError("give either --dataset or --data, not both")
    if args.data:
        common.check_not_folder(args.data, "--data")
        fmt = common.csv_format(args, run=args.model, path=stream.expand(args.data)[0])
        return common.report(common.read_files(args.data, fmt, "--data"))
    return common.report(datasets.read(args.dataset or datasets.DEFAULT, args.split))


def run(args) -> int:
    from mlgen.eval import metrics  # scikit-learn: not for `mlgen --help`

    artifacts.check_run_dir(args.model)
    if args.per_label:
        artifacts.check_out_file(args.per_label, "--per-label", inputs=(args.data,))
    data = evaluation_data(args)
    predictor = registry.load(args.model)
    report = predictor.vocab.unknown_report(data)
    if report:
        print(report, file=sys.stderr)
    progress = Progress("documents", total=len(data), enabled=bool(args.verbose))
    predictions, label_scores = common.predict_blocks(
        predictor,
        data.texts,
        progress,
        ranking=True,
        beam_size=args.beam_size,
        max_labels=args.max_labels,
        decision=args.decision,
        metric=args.metric,
    )
    predicted = [p.labels for p in predictions]
    scores = metrics.evaluate(data.label_sets, predicted, predictor.labels)
    scores.update(metrics.ranking(data.label_sets, label_scores, predictor.labels))
    rule = predictor.rule(args.decision, args.beam_size, args.metric)
    probabilities = predictor.probabilities(data.texts, label_scores, rule, args.max_labels)  # predict_proba's
    scores["ece"] = metrics.calibration(data.label_sets, probabilities, predictor.labels)[0]  # None: margins
    scores["ece_scores"] = metrics.calibration(data.label_sets, label_scores, predictor.labels)[0]
    scores["decision_metric"] = args.metric or predictor.decision.metric_of(predictor.rule(args.decision))
    scores["decision"] = rule.name
    scores["decision_rule"] = policy.describe(rule)
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
