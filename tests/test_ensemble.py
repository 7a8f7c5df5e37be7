"""The linear-br ensemble beside cnn-rnn and cnn-br (`--ensemble linear-br`): fitted on dev, saved, reloaded."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import TINY_FLAGS
from keras import tree

import mlgen
from mlgen import artifacts, registry
from mlgen.cli import main
from mlgen.data import read_labelled_csv
from mlgen.data.vocab import NUM_SPECIAL
from mlgen.decisions import ArrayOps, DecisionPolicy, Marginal, Mode, Threshold, fit
from mlgen.errors import InputError
from mlgen.eval import thresholds
from mlgen.nn import inference
from mlgen.registry import LINEAR_FIELDS


def test_the_prior_is_added_to_every_steps_label_logits(ensemble_run, tiny_data):
    predictor, _ = ensemble_run
    model, beam = predictor.model, 3
    texts = tiny_data["test"].texts[:4]
    token_ids = model.text_vectorizer(np.array(texts))
    prior = np.random.default_rng(0).normal(size=(len(texts), len(model.labels))).astype("float32")
    plain_fn, plain_states = inference.step_function(model, token_ids, beam)
    prior_fn, prior_states = inference.step_function(model, token_ids, beam, prior)
    plain_states, prior_states = (  # beam search runs each document's states `beam` times
        tree.map_structure(lambda s: np.repeat(s, beam, axis=0), states) for states in (plain_states, prior_states)
    )
    prev = np.repeat(np.array([1, NUM_SPECIAL, NUM_SPECIAL + 1, NUM_SPECIAL + 2], "int32"), beam)
    docs = np.repeat(np.arange(len(texts), dtype="int32"), beam)  # each row's document
    for _ in range(2):  # the first two steps
        plain, plain_states = plain_fn(prev, plain_states, docs)
        fused, prior_states = prior_fn(prev, prior_states, docs)
        added = np.asarray(fused) - np.asarray(plain)  # (batch * beam, num_label_ids)
        np.testing.assert_allclose(added[:, :NUM_SPECIAL], 0.0, atol=1e-5)
        np.testing.assert_allclose(added[:, NUM_SPECIAL:], np.repeat(prior, beam, axis=0), atol=1e-4)


def _searches(graph, rule, ranking=None) -> int:
    """The search loops in the compiled prediction function of `rule` (and `ranking`)."""
    operations = graph.function(rule, ranking).get_concrete_function().graph.get_operations()
    return sum(op.type in ("While", "StatelessWhile") for op in operations)


def test_one_search_feeds_the_mode_the_marginals_and_the_ranking(ensemble_run):
    graph = ensemble_run[0].graph
    mode, marginal = Mode(linear_weight=1.0, beam_size=3), Marginal(linear_weight=1.0, linear_mix=0.2, beam_size=3)
    assert _searches(graph, mode) == 1
    assert _searches(graph, mode, ranking=marginal) == 1  # the mode is the best of the marginals' beam
    assert _searches(graph, marginal, ranking=marginal) == 1
    assert _searches(graph, mode, ranking=Marginal(linear_weight=0.0, beam_size=3)) == 2  # another prior


def test_training_fits_the_ensemble_on_dev_and_saves_it(ensemble_run):
    predictor, run = ensemble_run
    assert (run / artifacts.LINEAR).is_file() and predictor.linear is not None
    config = json.loads((run / artifacts.CONFIG).read_text())
    assert config["model"]["ensemble"] == "linear-br" and set(LINEAR_FIELDS) <= set(config["baseline"])
    decision = json.loads((run / artifacts.DECISION).read_text())
    assert decision["format"] == 3 and decision["metric"] == "micro-f1"
    micro = decision["decisions"]["micro-f1"]
    assert micro["rule"] in ("mode", "marginal") and micro["linear_weight"] in (0.0, *fit.LINEAR_WEIGHTS)
    if micro["rule"] == "marginal":
        assert micro["linear_mix"] in (0.0, *fit.LINEAR_MIXES)
    assert predictor.decision.get("mode").linear_weight == micro["linear_weight"]  # the mode at the winner's weight
    scores = decision["dev_scores"]
    assert {"mode", "marginal", "linear-br"} <= set(scores)
    families = {key: value for key, value in scores.items() if key in ("mode", "marginal", "linear-br")}
    # The chosen family holds the best dev micro-F1 of all; ties keep the plain mode first.
    assert families[decision["chosen"]]["micro_f1"] == max(s["micro_f1"] for s in families.values())
    assert scores["micro-f1"]["micro_f1"] == families[decision["chosen"]]["micro_f1"]
    assert predictor.linear.num_labels == len(predictor.labels)
    linear_only = registry.fit("linear-br", *_train_dev(config), verbose=0)
    np.testing.assert_allclose(  # the ensemble's linear-br is linear-br with the network's label columns
        predictor.linear.margins(["wheat exports rose"]),
        linear_only.model.margins(["wheat exports rose"])[:, [linear_only.labels.index(x) for x in predictor.labels]],
        rtol=1e-5,
        atol=1e-6,
    )


def _train_dev(config):
    return read_labelled_csv(config["data"]["train"]), read_labelled_csv(config["data"]["dev"])


@pytest.mark.parametrize("rule", ["mode", "marginal"])
def test_predictions_follow_the_fitted_weights(ensemble_run, tiny_data, rule):
    predictor, _ = ensemble_run
    texts = tiny_data["test"].texts
    d = predictor.decision.rule(rule)
    margins = predictor.linear.margins(texts)
    np.testing.assert_allclose(predictor.graph.parts(texts, ("margins",))["margins"], margins, rtol=1e-4, atol=1e-5)
    if rule == "mode":
        key = ("sequence", d.beam_size)
        sequences = predictor.graph.parts(texts, (key,), linear_weight=d.linear_weight)
        expected = fit.label_sets(predictor.vocab, sequences[key])
    else:
        key = ("marginals", d.beam_size)
        parts = predictor.graph.parts(texts, (key, "head"), linear_weight=d.linear_weight)
        scores = (1 - d.head_weight - d.linear_mix) * parts[key] + d.head_weight * parts["head"]
        scores += d.linear_mix / (1 + np.exp(-margins))
        chosen = thresholds.apply(scores, d.threshold, always_top=True)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : predictor.model.max_labels]  # at most max_labels
        expected = [{predictor.labels[j] for j in t if c[j]} for t, c in zip(top, chosen)]
    predicted = predictor.predict(texts, decision=rule)
    assert [set(p) if rule == "marginal" else p for p in predicted] == expected


def test_a_large_linear_weight_makes_the_first_label_linear_brs_top_label(ensemble_run, tiny_data):
    predictor, _ = ensemble_run
    texts = tiny_data["test"].texts
    margins = predictor.linear.margins(texts)
    first = [labels[0] for labels in _greedy(predictor, texts, linear_weight=1e3)]
    assert first == [predictor.labels[j] for j in margins.argmax(axis=1)]
    plain = [labels[0] for labels in _greedy(predictor, texts)]
    assert plain != first  # the tiny network alone ranks differently


def _greedy(predictor, texts, linear_weight=0.0):
    """Greedy search's label sets with the margins times `linear_weight` on the logits."""
    key = ("sequence", 1)
    return fit.label_sets(predictor.vocab, predictor.graph.parts(texts, (key,), linear_weight=linear_weight)[key])


def test_the_ensemble_survives_reload_and_the_weights_can_be_turned_off(ensemble_run, tiny_data, tmp_path):
    predictor, run = ensemble_run
    texts = tiny_data["test"].texts
    for rule in ("mode", "marginal"):
        assert mlgen.load(run).predict(texts, decision=rule) == predictor.predict(texts, decision=rule)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    decision = json.loads((copy / artifacts.DECISION).read_text())
    decision["decisions"]["micro-f1"] = {"rule": "mode", "linear_weight": 0.0, "beam_size": 1}
    (copy / artifacts.DECISION).write_text(json.dumps(decision))
    plain = _greedy(predictor, texts)
    assert mlgen.load(copy).predict(texts) == plain


def test_a_run_folder_from_before_the_ensemble_loads_without_one(tiny_run, tiny_csvs, tmp_path):
    predictor, run = tiny_run
    copy = tmp_path / "old"
    shutil.copytree(run, copy)
    config = json.loads((copy / artifacts.CONFIG).read_text())
    del config["model"]["ensemble"]  # what mlgen 0.3 wrote
    (copy / artifacts.CONFIG).write_text(json.dumps(config))
    loaded = mlgen.load(copy)
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    assert loaded.linear is None and loaded.ensemble_weights is None
    assert loaded.predict(texts) == predictor.predict(texts)


def test_damaged_ensembles_are_one_line_errors(ensemble_run, tiny_run, tmp_path):
    _, run = ensemble_run
    copy = tmp_path / "no-linear"
    shutil.copytree(run, copy)
    (copy / artifacts.LINEAR).unlink()
    with pytest.raises(InputError, match="linear.npz is missing"):
        mlgen.load(copy)
    plain = tmp_path / "plain"
    shutil.copytree(tiny_run[1], plain)
    (plain / artifacts.DECISION).write_text(json.dumps({"rule": "mode", "linear_weight": 2.0}))
    with pytest.raises(InputError, match="decision.json weighs a linear-br ensemble that config.json lacks"):
        mlgen.load(plain)
    (plain / artifacts.DECISION).write_text(json.dumps({"rule": "mode", "linear_weight": -1.0}))
    with pytest.raises(InputError, match="decision.json is not a decision rule mlgen wrote"):
        mlgen.load(plain)


def test_cnn_br_gets_the_same_help(cnn_br_ensemble, tiny_data):
    predictor, folder = cnn_br_ensemble
    assert (folder / artifacts.LINEAR).is_file()
    saved = json.loads((folder / artifacts.THRESHOLDS).read_text())
    micro = saved["decisions"]["micro-f1"]
    assert saved["format"] == 3 and saved["metric"] == "micro-f1" and micro["rule"] == "threshold"
    assert micro["linear_weight"] in (0.0, *fit.LINEAR_WEIGHTS)
    assert micro["linear_mix"] in (0.0, *fit.LINEAR_MIXES)
    assert saved["dev_scores"]["linear-br"]["micro_f1"] >= saved["dev_scores"]["network"]["micro_f1"]
    texts = tiny_data["test"].texts
    fitted = predictor.decision
    try:
        predictor.decision = DecisionPolicy((dataclasses.replace(fitted.default, linear_weight=2.0, linear_mix=0.3),))
        parts = predictor.graph.parts(texts, ("network", "margins"))
        fused = _documented_mix(parts["network"], parts["margins"], 2.0, 0.3)
        np.testing.assert_allclose(predictor.label_scores(texts), fused, rtol=1e-5)
    finally:
        predictor.decision = fitted
    chosen = thresholds.apply(predictor.label_scores(texts), predictor.threshold, always_top=True)
    assert [set(p) for p in predictor.predict(texts)] == [
        {predictor.labels[j] for j in np.flatnonzero(row)} for row in chosen
    ]
    loaded = mlgen.load(folder)
    assert loaded.ensemble_weights == predictor.ensemble_weights
    assert loaded.predict(texts) == predictor.predict(texts)


def test_a_cnn_br_ensemble_without_its_weights_is_a_one_line_error(cnn_br_ensemble, tmp_path):
    _, folder = cnn_br_ensemble
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    (copy / artifacts.THRESHOLDS).write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(InputError, match="thresholds.json needs the linear-br ensemble's linear_weight and linear_mix"):
        mlgen.load(copy)


def _documented_mix(p, m, weight, mix):
    logit = np.log(p / (1 - p))
    return (1 - mix) / (1 + np.exp(-(logit + weight * m))) + mix / (1 + np.exp(-m))


def test_fused_scores_are_the_documented_mix():
    p, m = np.array([[0.2, 0.9]]), np.array([[1.0, -2.0]])
    ops = ArrayOps(network=p, margins=m)
    np.testing.assert_allclose(Threshold(linear_weight=3.0, linear_mix=0.3).scores(ops), _documented_mix(p, m, 3, 0.3))
    np.testing.assert_allclose(Threshold().scores(ops), p)


def test_linear_flags_need_the_ensemble(tiny_csvs, tmp_path, capsys):
    argv = ["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", *TINY_FLAGS, "--C", "1"]
    assert main(argv) == 2  # TINY_FLAGS say --ensemble none
    assert "--C: not used by --model cnn-rnn --ensemble none" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--model",
                "linear-br",
                "--train",
                tiny_csvs["train"],
                "--out",
                tmp_path / "l",
                "--ensemble",
                "none",
            ]
        )
        == 2
    )
    assert "--ensemble: not used by --model linear-br" in capsys.readouterr().err


def test_evaluate_reports_the_ensemble_weights(ensemble_run, tiny_csvs, capsys):
    predictor, run = ensemble_run
    assert main(["evaluate", "--model", run, "--data", tiny_csvs["test"], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ensemble"] == predictor.ensemble_weights
    assert set(report["ensemble"]) == {"linear_weight", "linear_mix"}


def test_fitting_the_ensemble_weights_traces_each_search_once(ensemble_run, tiny_csvs):
    """Every weight a fit tries runs the one compiled search (TensorFlow warned of retracing in `mlgen train`)."""
    predictor, _ = ensemble_run
    graph, fitted = predictor.graph, predictor.decision

    def traces():
        return {key: f.experimental_get_tracing_count() for key, f in graph._functions.items() if key[0] == "parts"}

    before = traces()
    try:
        predictor.fit_decision(read_labelled_csv(tiny_csvs["dev"]), "auto")
    finally:
        predictor.decision = fitted
    after = traces()
    # At most two traces: the head and margins, and the searches of all seven weights (the shared session
    # fixture may have traced either already).
    assert sum(count - before.get(key, 0) for key, count in after.items()) <= 2
