"""Issue 27: a decision fitted on dev for every metric, the one the user names by default; the
set rules (expected F1 over the beam, or under independence), per-label thresholds, and the
tuning that fits each of them."""

import dataclasses
import json
import math

import numpy as np
import pytest

import mlgen
from mlgen import artifacts, registry
from mlgen.config import DECISION_METRICS, TrainConfig
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.decisions import ArrayOps, ExpectedF1, IndependentExpectedF1, Marginal, calibration, fit
from mlgen.decisions.fit import TEMPERATURES
from mlgen.errors import InputError
from mlgen.eval import metrics, thresholds

# --- tuning a threshold for each metric ----------------------------------------------------------


def _evaluated(chosen, y_true, metric: str, missed=None) -> float:
    """`metric` of bool predictions as `mlgen.eval.metrics.evaluate` scores it (larger better), each
    document's `missed` gold labels outside the columns added as labels of their own."""
    labels = [f"l{j}" for j in range(chosen.shape[1])]
    missed = np.zeros(len(chosen), int) if missed is None else missed

    def sets(rows):
        return [[labels[j] for j in np.flatnonzero(row)] for row in rows]

    gold = [s + [f"unknown{d}-{k}" for k in range(missed[d])] for d, s in enumerate(sets(y_true))]
    return metrics.gain(metrics.evaluate(gold, sets(chosen), labels), metric)


@pytest.mark.parametrize("metric", ["samples-f1", "subset-accuracy", "hamming", "macro-f1"])
def test_the_grid_scores_every_cut_as_the_metric_does(metric):
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, columns = int(rng.integers(1, 30)), int(rng.integers(1, 9))
        scores = rng.random((n, columns)).round(1)  # ties
        y_true = rng.random((n, columns)) < 0.3
        missed = rng.integers(0, 2, n) * (rng.random(n) < 0.2)
        if metric in ("hamming", "macro-f1"):  # evaluate gives missed labels columns of their own: other units
            missed = np.zeros(n, int)
        cuts = np.unique(np.concatenate([scores.ravel(), [0.05, 0.55, 2.0]]))
        for always_top in (False, True) if metric != "macro-f1" else (False,):
            fast = thresholds._gains(scores, y_true, cuts, metric, always_top, missed)
            slow = [_evaluated(thresholds.apply(scores, c, always_top), y_true, metric, missed) for c in cuts]
            np.testing.assert_allclose(fast, slow)


def test_each_metric_gets_the_threshold_best_for_it():
    # Scores where the best cut differs by metric: one document with many middling labels.
    rng = np.random.default_rng(2)
    scores = rng.random((200, 12))
    y_true = rng.random((200, 12)) < scores**2
    for metric in ("samples-f1", "subset-accuracy", "hamming"):
        cut = thresholds.tune_for(scores, y_true, metric, always_top=True)
        best = _evaluated(thresholds.apply(scores, cut, True), y_true, metric)
        for other in np.linspace(0, 1, 41):  # no cut does better
            assert _evaluated(thresholds.apply(scores, other, True), y_true, metric) <= best + 1e-12
    assert thresholds.tune_for(scores, y_true, "hamming") > thresholds.tune_for(scores, y_true, "micro-f1")


def test_per_label_thresholds_shrink_toward_the_global_one():
    rng = np.random.default_rng(3)
    scores, y_true = rng.random((60, 4)), rng.random((60, 4)) < 0.2
    y_true[:, 3] = False  # a label never positive on dev
    overall = thresholds.tune_for(scores, y_true, "macro-f1", shrinkage=math.inf)
    assert isinstance(overall, float)
    own = thresholds.tune_for(scores, y_true, "macro-f1", shrinkage=0.0)
    assert own[3] == overall and np.all(own[:3] == thresholds.tune(scores, y_true, per_label=True)[:3])
    shrunk = thresholds.tune_for(scores, y_true, "macro-f1", shrinkage=10.0)
    positives = y_true.sum(axis=0)
    np.testing.assert_allclose(shrunk, (positives * own + 10 * overall) / (positives + 10))


def test_platt_scaling_recovers_the_scale_and_shift_that_made_the_labels():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4000, 5))
    y_true = rng.random(x.shape) < 1 / (1 + np.exp(-(2.0 * x - 1.0)))
    scale, shift = calibration.platt(x, y_true)
    assert scale == pytest.approx(2.0, abs=0.15) and shift == pytest.approx(-1.0, abs=0.1)
    assert calibration.platt(x, np.zeros_like(y_true)) == (1.0, 0.0)


# --- fitted for every metric, saved, chosen by name ----------------------------------------------


def _scores(predictor, data, **decide):
    return metrics.evaluate(data.label_sets, predictor.predict(data.texts, **decide), predictor.labels)


@pytest.mark.parametrize("fixture", ["linear_run", "cnn_br_ensemble", "ensemble_run"])
def test_every_model_type_fits_a_decision_for_every_metric(fixture, request, tiny_data):
    predictor, run = request.getfixturevalue(fixture)
    policy = predictor.decision
    assert list(policy.metrics) == list(DECISION_METRICS) and policy.metric == "micro-f1"
    assert all(metrics.METRIC_SCORES[m] in policy.dev_scores[m] for m in DECISION_METRICS)
    macro = policy.rule(metric="macro-f1")
    assert macro.name in ("threshold", "marginal", "mode")
    if macro.name != "mode" and isinstance(macro.threshold, tuple):
        assert len(macro.threshold) == predictor.vocab.num_labels
    samples = policy.rule(metric="samples-f1").name
    expected = {"linear_run": "expected-f1-independent", "cnn_br_ensemble": "expected-f1-independent"}
    assert samples in (expected.get(fixture, "expected-f1"), "threshold", "marginal", "mode")
    loaded = mlgen.load(run)
    assert loaded.decision == policy
    for metric in DECISION_METRICS:
        texts = tiny_data["test"].texts
        assert loaded.predict(texts, metric=metric) == predictor.predict(texts, metric=metric)


def test_on_calibrated_probabilities_each_metric_gets_the_decision_theory_answer():
    """Binary relevance on dev scores that are true probabilities (labels drawn from them): Hamming's
    threshold lands near 0.5, micro-F1's lower, and each rule scores its own metric on dev at least
    as well as micro-F1's rule does."""
    rng = np.random.default_rng(5)
    labels = [f"l{j}" for j in range(8)]
    probs = rng.beta(0.4, 1.2, size=(1500, 8))
    y_true = rng.random(probs.shape) < probs
    sets = [[labels[j] for j in np.flatnonzero(row)] for row in y_true]
    dev = LabelledData([f"doc {i}" for i in range(len(probs))], sets, list(range(1, len(sets) + 1)), "synthetic")
    vocab = LabelVocabulary(labels)
    policy = fit.fit_threshold(dev, vocab, ArrayOps(network=probs), per_label=False, always_top=False, has_linear=False)
    hamming, micro = policy.rule(metric="hamming"), policy.rule(metric="micro-f1")
    assert hamming.threshold == pytest.approx(0.5, abs=0.06) and micro.threshold < hamming.threshold - 0.1
    on_dev = {
        metric: metrics.evaluate(dev.label_sets, fit.label_sets(vocab, rule.outputs(ArrayOps(network=probs))), labels)
        for metric, rule in policy.metrics.items()
    }
    for metric in DECISION_METRICS:
        assert metrics.gain(on_dev[metric], metric) >= metrics.gain(on_dev["micro-f1"], metric) - 0.005, metric
    assert metrics.gain(on_dev["subset-accuracy"], "subset-accuracy") > on_dev["micro-f1"]["subset_accuracy"] + 0.01


def test_the_metric_the_user_names_is_the_default_and_survives_reload(tiny_data, tmp_path):
    predictor = registry.fit(
        "linear-br", tiny_data["train"], tiny_data["dev"], train_config=TrainConfig(metric="subset-accuracy"), verbose=0
    )
    assert predictor.decision.metric == "subset-accuracy"
    assert predictor.decision.default == predictor.decision.rule(metric="subset-accuracy")
    predictor.save(tmp_path / "run")
    loaded = mlgen.load(tmp_path / "run")
    assert loaded.decision.metric == "subset-accuracy" and loaded.decision_metric == "subset-accuracy"
    texts = tiny_data["test"].texts
    assert loaded.predict(texts) == loaded.predict(texts, metric="subset-accuracy")
    saved = json.loads((tmp_path / "run" / artifacts.THRESHOLDS).read_text())
    assert saved["metric"] == "subset-accuracy" and list(saved["decisions"])[0] == "subset-accuracy"


def test_a_metric_a_model_was_not_fitted_for_is_refused_in_one_line(linear_run, tmp_path):
    predictor, run = linear_run
    with pytest.raises(InputError, match="metric='accuracy': must be one of micro-f1, macro-f1"):
        predictor.predict(["x"], metric="accuracy")
    old = tmp_path / "old"
    import shutil

    shutil.copytree(run, old)
    saved = json.loads((old / artifacts.THRESHOLDS).read_text())
    legacy = {"format": 2, "rule": "threshold", "rules": {"threshold": saved["decisions"]["micro-f1"]}}
    del legacy["rules"]["threshold"]["rule"]
    (old / artifacts.THRESHOLDS).write_text(json.dumps(legacy))
    loaded = mlgen.load(old)
    assert loaded.decision.metric == "micro-f1" and loaded.predict(["x"]) == predictor.predict(["x"])
    with pytest.raises(InputError, match=r"^metric='samples-f1' was not fitted on dev for this model; it has metric="):
        loaded.predict(["x"], metric="samples-f1")


# --- the set rules: NumPy (fitting, linear-br) and the compiled graph agree -----------------------


def test_the_expected_f1_rule_decides_alike_in_numpy_and_in_the_graph(ensemble_run, tiny_data):
    predictor, _ = ensemble_run
    texts = tiny_data["test"].texts
    for weight in (0.0, 2.0):
        key = ("hypotheses", 3)
        hypotheses = predictor.graph.parts(texts, (key,), linear_weight=weight)[key]
        ops = ArrayOps(
            hypotheses={(3, weight): hypotheses},
            min_labels=predictor.model.min_labels,
            max_labels=predictor.graph.max_labels(None),
            num_labels=predictor.vocab.num_labels,
        )
        for temperature in TEMPERATURES:
            rule = ExpectedF1(linear_weight=weight, temperature=temperature, beam_size=3)
            numpy = rule.outputs(ops)
            graph = predictor.graph.predict(texts, rule)
            assert graph["num_labels"].tolist() == numpy["num_labels"].tolist()
            assert min(graph["num_labels"]) >= predictor.model.min_labels
            width = numpy["label_ids"].shape[1]
            np.testing.assert_array_equal(graph["label_ids"][:, :width], numpy["label_ids"])
            np.testing.assert_allclose(graph["scores"][:, :width], numpy["scores"], rtol=1e-5, atol=1e-7)


def test_the_independent_expected_f1_rule_decides_alike_in_numpy_and_in_the_graph(cnn_br_ensemble, tiny_data):
    predictor, _ = cnn_br_ensemble
    texts = tiny_data["test"].texts
    parts = predictor.graph.parts(texts, ("network", "margins"))
    for rule in (
        IndependentExpectedF1(linear_weight=1.0, linear_mix=0.2, scale=1.5, shift=-0.5, always_top=True),
        IndependentExpectedF1(scale=0.7, shift=0.3),
    ):
        numpy = rule.outputs(ArrayOps(**parts))
        graph = predictor.graph.predict(texts, rule)
        assert graph["num_labels"].tolist() == numpy["num_labels"].tolist()
        width = numpy["label_ids"].shape[1]
        np.testing.assert_array_equal(graph["label_ids"][:, :width], numpy["label_ids"])
        np.testing.assert_allclose(graph["scores"][:, :width], numpy["scores"], rtol=1e-5, atol=1e-7)


def test_per_label_marginal_thresholds_predict_saves_and_exports(ensemble_run, tiny_data, tmp_path):
    predictor, run = ensemble_run
    texts = tiny_data["test"].texts
    fitted = predictor.decision
    marginal = fitted.get("marginal") or Marginal(beam_size=5)
    cuts = tuple(np.linspace(0.05, 0.6, predictor.vocab.num_labels))
    rule = dataclasses.replace(marginal, threshold=cuts)
    try:
        predictor.decision = dataclasses.replace(fitted, rules=(rule, *fitted.rules), metrics={"macro-f1": rule})
        predicted = predictor.predict_scores(texts)
        scores = predictor.label_scores(texts)
        limit = predictor.graph.max_labels(None)
        for p, row in zip(predicted, scores):
            by_score = np.argsort(-row, kind="stable")
            above = [j for j in by_score if row[j] >= cuts[j]]
            expected = (above or list(by_score[: predictor.model.min_labels]))[:limit]
            assert p.labels == [predictor.labels[j] for j in expected]
        served = predictor.serving(metric="macro-f1").serve(np.array(texts, dtype=object))
        names = [[x.decode() for x in row[:n]] for row, n in zip(served["labels"].numpy(), served["num_labels"])]
        assert names == [p.labels for p in predicted]
    finally:
        predictor.decision = fitted


def test_an_estimator_fits_for_and_scores_by_its_metric(tiny_data):
    from mlgen.estimator import LinearBinaryRelevanceClassifier

    train, dev, test = tiny_data["train"], tiny_data["dev"], tiny_data["test"]
    clf = LinearBinaryRelevanceClassifier(metric="subset-accuracy").fit(
        train.texts, train.label_sets, dev.texts, dev.label_sets
    )
    assert clf.get_params()["metric"] == "subset-accuracy" and clf.predictor_.decision.metric == "subset-accuracy"
    exact = np.mean([set(p) == set(g) for p, g in zip(clf.predict(test.texts), test.label_sets)])
    assert clf.score(test.texts, test.label_sets) == pytest.approx(exact)
    with pytest.raises(InputError, match="metric='accuracy': must be one of micro-f1"):
        LinearBinaryRelevanceClassifier(metric="accuracy").fit(train.texts, train.label_sets)


def test_the_cli_trains_for_a_metric_and_predicts_evaluates_and_reports_by_any(tiny_csvs, tmp_path, capsys):
    from mlgen.cli import main

    run = tmp_path / "run"
    argv = ["train", "--model", "linear-br", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"], "--out", run]
    assert main([*argv, "--metric", "hamming"]) == 0
    capsys.readouterr()
    assert main(["info", "--model", run, "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)["decision"]
    assert decision["metric"] == "hamming" and list(decision["fitted_for"]) == ["hamming", *DECISION_METRICS[:-1]]
    assert main(["info", "--model", run]) == 0
    assert "decision: threshold for hamming (" in capsys.readouterr().out
    for metric in (None, "subset-accuracy"):
        assert (
            main(
                [
                    "evaluate",
                    "--model",
                    run,
                    "--data",
                    tiny_csvs["test"],
                    "--json",
                    *(("--metric", metric) * bool(metric)),
                ]
            )
            == 0
        )
        scores = json.loads(capsys.readouterr().out)
        assert scores["decision_metric"] == (metric or "hamming") and scores["ece_scores"] is None  # margins
        assert 0 <= scores["ece"] <= 1  # predict_proba's: the margins calibrated on dev
        assert scores["decision_rule"]["rule"] == mlgen.load(run).decision.rule(metric=metric).name
    out = tmp_path / "predicted.jsonl"
    assert main(["predict", "--model", run, "--input", tiny_csvs["test"], "--output", out, "--metric", "macro-f1"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    texts = [line["text"] for line in lines]
    assert [line["predicted_labels"] for line in lines] == mlgen.load(run).predict(texts, metric="macro-f1")


def test_a_compiled_function_per_rule_prints_no_retracing_notice(ensemble_run, tiny_data):
    """`compare` predicts under five metrics' rules, each compiled once: TensorFlow's notice about
    "frequent retracing" (it counts every function of one code object) is noise there."""
    import logging

    _, run = ensemble_run
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        predictor = mlgen.load(run)  # a fresh graph: nothing compiled yet
        for metric in DECISION_METRICS:
            predictor.predict(tiny_data["test"].texts[:8], metric=metric)
            predictor.predict_ranked(tiny_data["test"].texts[:8], metric=metric)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda d: d["decisions"].update({"micro-f1": 3}), 'has 3 under "decisions.micro-f1", not an object'),
        (lambda d: d.update(decisions=["micro-f1"]), 'has ["micro-f1"] under "decisions", not an object'),
        (lambda d: d.update(format=2, rule="threshold", rules={"threshold": []}), 'has [] under "rules.threshold"'),
    ],
)
def test_info_names_a_damaged_decision_file_in_one_line(linear_run, tmp_path, capsys, edit, where):
    import shutil

    from mlgen.cli import main

    run = tmp_path / "run"
    shutil.copytree(linear_run[1], run)
    data = json.loads((run / artifacts.THRESHOLDS).read_text())
    edit(data)
    (run / artifacts.THRESHOLDS).write_text(json.dumps(data))
    assert main(["info", "--model", run]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlgen: error: {run}: thresholds.json {where}") and err.count("\n") == 1
