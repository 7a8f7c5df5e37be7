"""Run folders written by an earlier mlgen load and predict exactly as they did then.

`tests/fixtures/runs_0.2.0` holds one folder per model type, written by mlgen 0.2.0
(before the package was laid out in rooms), and `expected.json` their predictions at
the time; see its README.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mlgen

FIXTURES = Path(__file__).parent / "fixtures" / "runs_0.2.0"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def old_runs(tmp_path_factory):
    """A copy of the fixture folders (loading must not need to write, but a test must never change them)."""
    folder = tmp_path_factory.mktemp("old") / "runs"
    shutil.copytree(FIXTURES, folder)
    return folder


@pytest.mark.parametrize("model_type", sorted(EXPECTED["runs"]))
def test_old_run_folder_predicts_as_it_did(old_runs, model_type):
    predictor = mlgen.load(old_runs / model_type)
    assert predictor.model_type == model_type
    expected = EXPECTED["runs"][model_type]
    for call, options in expected["_calls"].items():
        predictions = predictor.predict_scores(EXPECTED["texts"], **options)
        assert [p.labels for p in predictions] == [e["labels"] for e in expected[call]], call
        for p, e in zip(predictions, expected[call]):
            np.testing.assert_allclose(p.scores, e["scores"], rtol=1e-4, atol=1e-5, err_msg=call)
            if e["log_prob"] is None:
                assert p.log_prob is None
            else:
                assert p.log_prob == pytest.approx(e["log_prob"], abs=1e-4)


def test_old_attention_folder_explains_as_it_did(old_runs):
    explanation = mlgen.load(old_runs / "cnn-rnn").explain(EXPECTED["texts"][0])
    assert explanation.labels == EXPECTED["explain"]["labels"]
    assert explanation.tokens == EXPECTED["explain"]["tokens"]
    np.testing.assert_allclose(explanation.weights, EXPECTED["explain"]["weights"], atol=1e-5)
