"""Calibrated probabilities: the map fitted on dev (`mlgen.decisions.calibration`), stored in the
decision file, applied by `predict_proba` in the compiled graph and in NumPy alike."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import mlgen
from mlgen.cli import main
from mlgen.decisions import ArrayOps, DecisionPolicy, Mode, calibration, policy
from mlgen.decisions.calibration import Calibration
from mlgen.errors import InputError
from mlgen.eval import metrics
from mlgen.nn.prediction import GraphOps


def _overconfident(n_docs=400, n_labels=30, seed=0):
    """Scores that are too sure of themselves: the truth is drawn at `sigmoid(logit(s) / 2 - 1)`."""
    rng = np.random.default_rng(seed)
    scores = 1 / (1 + np.exp(-rng.normal(-2.0, 3.0, size=(n_docs, n_labels))))
    truth = rng.uniform(size=scores.shape) < 1 / (1 + np.exp(-(ArrayOps.logit(scores) / 2 - 1)))
    return scores, truth


def _ece(scores, truth):
    labels = [str(j) for j in range(truth.shape[1])]
    gold = [[labels[j] for j in np.flatnonzero(row)] for row in truth]
    return metrics.calibration(gold, scores, labels)[0]


def test_fit_calibrates_overconfident_scores_on_held_out_documents():
    scores, truth = _overconfident()
    fitted = calibration.fit(scores[:200], truth[:200])
    assert fitted.method in ("platt", "isotonic") and fitted.problem() is None
    before, after = _ece(scores[200:], truth[200:]), _ece(fitted.apply(ArrayOps, scores[200:]), truth[200:])
    assert after < before / 2, (before, after)
    platt = calibration._fit_one("platt", ArrayOps.logit(scores), truth, margins=False)
    assert platt.scale == pytest.approx(0.5, abs=0.1) and platt.shift == pytest.approx(-1.0, abs=0.2)


def test_fit_keeps_calibrated_scores_and_maps_margins_to_probabilities():
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=(600, 20))
    truth = rng.uniform(size=scores.shape) < scores  # already calibrated
    fitted = calibration.fit(scores[:300], truth[:300])
    assert np.abs(fitted.apply(ArrayOps, scores) - scores).mean() < 0.02  # whichever map won, about the identity
    assert _ece(fitted.apply(ArrayOps, scores[300:]), truth[300:]) < _ece(scores[300:], truth[300:]) + 0.01
    margins = 4 * ArrayOps.logit(scores)  # a margin: no probability at all
    fitted = calibration.fit(margins, truth, margins=True)
    assert fitted.method != "none" and fitted.margins
    probabilities = fitted.apply(ArrayOps, margins)
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    assert _ece(probabilities, truth) < 0.05


@pytest.mark.parametrize("method", calibration.METHODS)
def test_the_graph_and_numpy_apply_the_same_calibration(method):
    scores, truth = _overconfident(n_docs=200, n_labels=12, seed=2)
    fitted = calibration._fit_one(method, ArrayOps.logit(scores), truth, margins=False)
    tested = np.concatenate([scores, np.array([[0.0, 1.0, 1e-12, 1 - 1e-12] * 3])])  # beyond every knot
    graph = fitted.apply(GraphOps, tf.constant(tested, tf.float64)).numpy()
    np.testing.assert_allclose(graph, fitted.apply(ArrayOps, tested), atol=1e-9)
    assert graph.shape == tested.shape


def test_a_calibration_survives_the_decision_file_and_damage_is_named(tmp_path):
    scores, truth = _overconfident(n_docs=100, n_labels=8)
    fitted = calibration._fit_one("isotonic", ArrayOps.logit(scores), truth, margins=False)
    decision = DecisionPolicy((Mode(),), calibration=fitted)
    data = json.loads(json.dumps(decision.to_json()))
    limits = {"num_labels": 8, "beam_limit": 8}
    assert policy.read(tmp_path, "decision.json", data, limits) == decision
    assert "calibration" not in DecisionPolicy((Mode(),)).to_json()  # none fitted: the scores as they are
    for change, said in [
        ({"method": "cubic"}, '"calibration.method": "cubic", not one of none, temperature, platt, isotonic'),
        ({"values": [*fitted.values[:-1], 2.0]}, f'"calibration.values[{len(fitted.values) - 1}]": 2.0, not a'),
        ({"knots": list(reversed(fitted.knots))}, "knots do not increase"),
        ({"knots": "many"}, '"calibration.knots": "many", not a list of numbers'),
        ({"scale": 2.0, "method": "none", "knots": [], "values": []}, "a scale or shift, or margins, in a none"),
    ]:
        damaged = {**data, "calibration": {**data["calibration"], **change}}
        with pytest.raises(InputError) as error:
            policy.read(tmp_path, "decision.json", damaged, limits)
        assert said in str(error.value) and "decision.json" in str(error.value) and "\n" not in str(error.value)


def test_predict_proba_is_the_calibrated_label_scores_of_every_type(tiny_run, cnn_br_ensemble, linear_run, tiny_data):
    texts = tiny_data["test"].texts[:60]
    for predictor, run in (tiny_run, cnn_br_ensemble, linear_run):
        fitted = predictor.decision.calibration
        assert isinstance(fitted, Calibration) and fitted.problem() is None, predictor.model_type
        probabilities = predictor.predict_proba(texts)
        assert probabilities.shape == (len(texts), predictor.vocab.num_labels)
        assert probabilities.min() >= 0 and probabilities.max() <= 1
        # The graph's (or linear-br's NumPy) calibration and the NumPy one on `predict_ranked`'s scores agree.
        _, label_scores = predictor.predict_ranked(texts)
        np.testing.assert_allclose(
            predictor.probabilities(texts, label_scores, predictor.decision.default), probabilities, atol=1e-5
        )
        np.testing.assert_allclose(mlgen.load(run).predict_proba(texts), probabilities, atol=1e-6)
        assert predictor.predict_proba([]).shape == (0, predictor.vocab.num_labels)
    assert linear_run[0].score_range is None and linear_run[0].decision.calibration.margins  # svc margins


def test_a_model_without_calibration_gives_its_scores_or_says_why_not(tiny_run, linear_run, tmp_path, tiny_data):
    texts = tiny_data["test"].texts[:20]
    for predictor, run in (tiny_run, linear_run):
        copy = tmp_path / run.name
        shutil.copytree(run, copy)
        path = copy / predictor.decision_file
        data = json.loads(path.read_text())
        del data["calibration"]
        path.write_text(json.dumps(data))
        loaded = mlgen.load(copy)
        assert loaded.decision.calibration is None
        if loaded.score_range is None:  # svc margins are no probabilities
            with pytest.raises(InputError, match="margins and has no calibration fitted on dev"):
                loaded.predict_proba(texts)
            assert loaded.probabilities(texts, loaded.label_scores(texts), loaded.decision.default) is None
        else:
            np.testing.assert_allclose(loaded.predict_proba(texts), loaded.label_scores(texts), atol=1e-6)


def test_evaluate_and_info_report_the_calibration(linear_run, tiny_csvs, capsys):
    _, run = linear_run
    assert main(["evaluate", "--model", run, "--data", tiny_csvs["test"], "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0 <= scores["ece"] <= 1 and scores["ece_scores"] is None  # margins: only the calibrated ones
    assert main(["info", "--model", run]) == 0
    method = mlgen.load(run).decision.calibration.method
    assert f"probabilities: {method} calibration on dev" in capsys.readouterr().out
    assert main(["info", "--model", run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"]["calibration"]["method"] == method


def test_the_linear_br_estimator_gives_calibrated_probabilities(tiny_data):
    from mlgen.estimator import LinearBinaryRelevanceClassifier

    train = tiny_data["train"]
    clf = LinearBinaryRelevanceClassifier().fit(train.texts, train.label_sets)
    probabilities = clf.predict_proba(tiny_data["test"].texts[:30])
    assert probabilities.shape == (30, len(clf.classes_)) and 0 <= probabilities.min() <= probabilities.max() <= 1
