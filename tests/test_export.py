"""`mlgen export`: a SavedModel that TensorFlow alone serves, with the labels `predict` gives."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mlgen
from mlgen import artifacts
from mlgen.cli import main

# Run in a fresh interpreter that never imports mlgen: what TF Serving or TFX would see.
SERVE = """
import json, sys
import tensorflow as tf
texts = json.loads(sys.stdin.read())
results = {}
for folder in sys.argv[1:]:
    loaded = tf.saved_model.load(folder)
    serve = loaded.signatures["serving_default"]
    out = serve(texts=tf.constant(texts))
    counts = out["num_labels"].numpy().tolist()
    results[folder] = {
        "labels": [[label.decode() for label in row[:n]] for row, n in zip(out["labels"].numpy(), counts)],
        "scores": [row[:n].tolist() for row, n in zip(out["scores"].numpy(), counts)],
        "padding": [[label.decode() for label in row[n:]] for row, n in zip(out["labels"].numpy(), counts)],
        "probabilities": out["probabilities"].numpy().tolist(),
        "label_names": [label.decode() for label in loaded.label_names.numpy()],
    }
assert not [name for name in sys.modules if name.split(".")[0] == "mlgen"]
print(json.dumps(results))
"""


def test_exported_models_serve_the_labels_predict_gives_without_mlgen(
    tiny_run, ensemble_run, cnn_br_ensemble, linear_run, tiny_data, tmp_path, capsys
):
    texts = tiny_data["test"].texts[:40]
    # The expected-F1 sets as samples-F1's rules, whatever the tiny fits chose.
    set_rules = {
        "sets": (ensemble_run[1], {"rule": "expected-f1", "linear_weight": 2.0, "temperature": 0.5, "beam_size": 3}),
        "independent": (
            cnn_br_ensemble[1],
            {"rule": "expected-f1-independent", "linear_weight": 1.0, "linear_mix": 0.2, "scale": 1.3, "shift": -0.2}
            | {"always_top": True, "logit": True},
        ),
    }
    runs = {}
    for key, (run, rule) in set_rules.items():
        copy = tmp_path / key
        shutil.copytree(run, copy)
        name = artifacts.DECISION if (copy / artifacts.DECISION).is_file() else artifacts.THRESHOLDS
        decision = json.loads((copy / name).read_text())
        decision["decisions"]["samples-f1"] = rule
        (copy / name).write_text(json.dumps(decision))
        runs[key] = (mlgen.load(copy), copy)
    exports = {}
    for name, (predictor, run), flags in [
        ("cnn-rnn mode", tiny_run, []),
        ("cnn-rnn beam", tiny_run, ["--beam-size", "3"]),
        ("ensemble marginal", ensemble_run, ["--decision", "marginal"]),
        ("ensemble mode", ensemble_run, ["--decision", "mode"]),
        ("ensemble expected-f1", runs["sets"], ["--metric", "samples-f1"]),
        ("cnn-br ensemble", cnn_br_ensemble, []),
        ("cnn-br expected-f1", runs["independent"], ["--metric", "samples-f1"]),
        ("linear-br", linear_run, []),
        ("linear-br macro-f1", linear_run, ["--metric", "macro-f1"]),
    ]:
        out = tmp_path / name.replace(" ", "-") / "1"
        assert main(["export", "--model", run, "--out", out, *flags]) == 0
        assert f"to {out}" in capsys.readouterr().out
        note = json.loads((out / "mlgen_export.json").read_text())
        assert note["labels"] == predictor.labels and "probabilities float32 (batch, num_labels)" in note["signature"]
        beam = int(flags[1]) if flags[:1] == ["--beam-size"] else None
        decision = flags[1] if flags[:1] == ["--decision"] else None
        metric = flags[1] if flags[:1] == ["--metric"] else None
        expected = predictor.predict_scores(texts, beam_size=beam, decision=decision, metric=metric)
        exports[str(out)] = (name, expected, predictor.predict_proba(texts), predictor.labels)
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    served = subprocess.run(
        [sys.executable, "-c", SERVE, *exports], input=json.dumps(texts), capture_output=True, text=True, env=env
    )
    assert served.returncode == 0, served.stderr[-2000:]
    results = json.loads(served.stdout)
    for folder, (name, expected, probabilities, labels) in exports.items():
        got = results[folder]
        # predict_proba's calibrated probabilities, every label's, in the order the module names them.
        assert got["label_names"] == labels, name
        np.testing.assert_allclose(got["probabilities"], probabilities, atol=1e-5, err_msg=name)
        assert got["labels"] == [p.labels for p in expected], name
        for scores, prediction in zip(got["scores"], expected):
            assert scores == pytest.approx(prediction.scores, abs=1e-4), name
        assert all(label == "" for row in got["padding"] for label in row)
    assert ensemble_run[0].linear is not None and any(ensemble_run[0].ensemble_weights.values())


def test_export_refuses_what_it_must_not_overwrite(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["export", "--model", run, "--out", mine]) == 2
    assert "holds files mlgen did not write (notes.txt)" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep"
    assert main(["export", "--model", run, "--out", tmp_path / "x", "--decision", "marginal"]) == 2
    assert "needs a decision fitted on dev" in capsys.readouterr().err
