"""`mlgen export`: a run folder as a TensorFlow SavedModel for TF Serving, TFX or `tf.saved_model.load`."""

from __future__ import annotations

import json

from mlgen import artifacts, registry
from mlgen.cli import common
from mlgen.version import __version__

# What an export folder holds: TensorFlow's SavedModel, and mlgen's note on what it is.
MARKER = "mlgen_export.json"
EXPORT_FOLDER = artifacts.FolderKind(
    "mlgen export folder",
    MARKER,
    "mlgen_version",
    frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb", MARKER}),
)


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a run folder as a TensorFlow SavedModel (serving_default: raw strings in, labels out)",
        description="Write --model as a TensorFlow SavedModel in --out. Its serving_default signature takes a batch "
        "of raw strings ('texts') and returns 'labels' (padded with \"\"), their 'scores' and 'num_labels' per "
        "document, and 'probabilities' (every label's, calibrated on dev; columns in the order of the 'labels' list "
        "of mlgen_export.json beside it); the text vectorizer, the network, the search and the fitted decision rule "
        "(with the linear-br ensemble's TF-IDF) all run in the graph. TF Serving reads version folders: "
        "--out exports/NAME/1.",
    )
    parser.add_argument("--model", required=True, metavar="DIR", help="run folder written by `mlgen train`")
    parser.add_argument("--out", required=True, metavar="DIR", help="SavedModel folder to write (replaced atomically)")
    parser.add_argument("--beam-size", type=int, help="cnn-rnn: the search's beam (default: the model's)")
    common.add_decision_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    artifacts.check_run_dir(args.model)
    out = artifacts.check_out_dir(args.out, EXPORT_FOLDER, inputs=(args.model,))
    predictor = registry.load(args.model)
    common.check_decoding(predictor, args.beam_size, args.decision, args.metric)
    module = predictor.serving(args.beam_size, args.decision, args.metric)
    from mlgen.nn import serving  # TensorFlow

    with artifacts.atomic_dir(out, EXPORT_FOLDER) as staging:
        serving.save(module, staging)
        note = {
            "mlgen_version": __version__,
            "model": str(args.model),
            "model_type": predictor.model_type,
            "signature": "serving_default: texts string (batch,) -> labels string (batch, k), "
            "scores float32 (batch, k), num_labels int32 (batch,)"
            + (", probabilities float32 (batch, num_labels)" if predictor.decision.calibration is not None else ""),
            # The columns of `probabilities`, in order (the module's `label_names` variable holds them too).
            "labels": predictor.labels,
        }
        (staging / MARKER).write_text(json.dumps(note, indent=1) + "\n", encoding="utf-8")
    print(f"exported {predictor.model_type} {args.model} to {out}")
    return 0
