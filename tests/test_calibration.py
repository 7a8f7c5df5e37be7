"""Calibrated probabilities: the map fitted on dev (`mlgen.decisions.calibration`), stored in the
decision file, applied by `predict_proba` in the compiled graph and in NumPy alike."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import mlgen
from mlgen.cli import main
from mlgen.decisions import (
    ArrayOps,
    DecisionPolicy,
    IndependentExpectedF1,
    Marginal,
    Mode,
    Threshold,
    calibration,
    policy,
)
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
    assert fitted.method in ("sigmoid", "isotonic") and fitted.problem() is None
    before, after = _ece(scores[200:], truth[200:]), _ece(fitted.apply(ArrayOps, scores[200:]), truth[200:])
    assert after < before / 2, (before, after)
    platt = calibration.fit(scores, truth, methods=("sigmoid",))
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


def test_fit_copes_with_degenerate_dev_data_and_refuses_unknown_methods():
    rng = np.random.default_rng(3)
    scores, truth = rng.uniform(size=(6, 4)), rng.uniform(size=(6, 4)) < 0.5
    for case_scores, case_truth in [
        (scores[:0], truth[:0]),  # no document
        (scores[:1], truth[:1]),  # one
        (np.full((6, 4), 0.3), truth),  # one score throughout
        (scores, np.zeros_like(truth)),  # nothing gold
    ]:
        for margins in (False, True):
            fitted = calibration.fit(case_scores, case_truth, margins)
            assert fitted.problem() is None and fitted.margins == (margins and fitted.method != "none")
            probabilities = fitted.apply(ArrayOps, scores)
            assert np.all((probabilities >= 0) & (probabilities <= 1))
    broken = scores.copy()
    broken[0, 0] = np.nan  # a NaN score must not stall Newton's method
    assert calibration.fit(broken, truth, methods=("sigmoid",)).problem() is None
    assert calibration.platt(np.full((4, 2), np.nan), truth[:4, :2]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="no calibration method"):
        calibration.fit(scores, truth, methods=("cubic",))
    with pytest.raises(ValueError, match="no calibration method"):
        calibration.fit(scores, truth, margins=True, methods=("none",))  # margins are no probabilities


def test_a_separable_dev_set_keeps_the_maps_midpoint_within_bounds():
    z = np.linspace(-3, 3, 400).reshape(40, 10)
    fitted = calibration.fit(z, z > 0.5, margins=True, methods=("sigmoid",))
    assert abs(fitted.scale) <= calibration.MAX_PARAMETER and abs(fitted.shift) <= calibration.MAX_PARAMETER
    assert -fitted.shift / fitted.scale == pytest.approx(0.5, abs=0.05)


def test_which_rules_score_by_probabilities():
    assert not Threshold().gives_probabilities(margins=True) and Threshold().gives_probabilities(margins=False)
    assert Threshold(linear_weight=1.0).gives_probabilities(margins=True)  # the ensemble's fused sigmoid
    assert IndependentExpectedF1().gives_probabilities(margins=True)  # Platt-scaled margins
    assert Marginal().gives_probabilities(margins=False)


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
        ({"method": "cubic"}, '"calibration.method": "cubic", not one of none, temperature, sigmoid, isotonic'),
        ({"values": [*fitted.values[:-1], 2.0]}, f'"calibration.values[{len(fitted.values) - 1}]": 2.0, not a'),
        ({"knots": list(reversed(fitted.knots))}, "knots do not increase"),
        ({"knots": "many"}, '"calibration.knots": "many", not a list of numbers'),
        ({"scale": 2.0, "method": "none", "knots": [], "values": []}, "a scale or shift, or margins, in a none"),
        ({"values": [*fitted.values[:-1], 1.0009]}, "not a finite number from 0 to 1"),  # no slack above 1
        ({"margins": True}, '"calibration.margins": true, though its default rule scores by probabilities'),
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
    # A rule that ranks by other scores than the calibrated ones: `predict_proba` runs again.
    predictor = cnn_br_ensemble[0]
    other = IndependentExpectedF1(linear_weight=1.0, scale=2.0)
    _, label_scores = predictor.predict_ranked(texts, decision=None)
    np.testing.assert_allclose(
        predictor.probabilities(texts, label_scores * 0, other), predictor.predict_proba(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        predictor.probabilities(texts, label_scores * 0, predictor.decision.default, max_labels=1),
        predictor.predict_proba(texts),
        atol=1e-6,
    )


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


def test_info_describes_a_damaged_calibration_without_a_traceback(linear_run, tmp_path, capsys):
    copy = tmp_path / "damaged"
    shutil.copytree(linear_run[1], copy)
    path = copy / linear_run[0].decision_file
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "calibration": {"method": "isotonic", "knots": 5}}))
    assert main(["info", "--model", copy]) == 0
    assert "probabilities: isotonic calibration on dev (? knots)" in capsys.readouterr().out
    path.write_text(json.dumps({**data, "calibration": [1, 2]}))
    assert main(["info", "--model", copy]) == 2
    error = capsys.readouterr().err
    assert 'under "calibration", not an object' in error and "Traceback" not in error


def test_the_linear_br_estimator_gives_calibrated_probabilities(tiny_data):
    from mlgen.estimator import LinearBinaryRelevanceClassifier

    train = tiny_data["train"]
    clf = LinearBinaryRelevanceClassifier().fit(train.texts, train.label_sets)
    probabilities = clf.predict_proba(tiny_data["test"].texts[:30])
    assert probabilities.shape == (30, len(clf.classes_)) and 0 <= probabilities.min() <= probabilities.max() <= 1
