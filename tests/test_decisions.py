"""Issue 26: decision rules are typed, written once, saved with a format version and checked on load
in one place; adding one is a class and a registration."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

import mlgen
from mlgen import artifacts
from mlgen.decisions import RULES, ArrayOps, DecisionPolicy, ExpectedF1, Marginal, Mode, Rule, Threshold, register
from mlgen.decisions.rules import bounded
from mlgen.errors import InputError


@pytest.fixture
def top_two():
    """A toy rule, added as the README's recipe says: the two labels with the largest beam marginals."""

    @register("top-two")
    @dataclasses.dataclass(frozen=True)
    class TopTwo(Rule):
        beam_size: int = bounded(3, low=2, high="beam_limit", kind="count")

        def scores(self, ops):
            return ops.marginals(self.beam_size, self.linear_weight)

        def outputs(self, ops):
            return ops.choose(self.scores(ops), threshold=2.0, min_labels=2)  # nothing reaches 2: the top two

    try:
        yield TopTwo
    finally:
        del RULES["top-two"]


def test_a_new_rule_predicts_saves_reloads_and_exports(top_two, tiny_run, tiny_data, tmp_path):
    predictor, folder = tiny_run
    texts = tiny_data["test"].texts[:12]
    fitted = predictor.decision
    try:
        predictor.decision = DecisionPolicy((top_two(beam_size=4), *fitted.rules))
        predicted = predictor.predict_scores(texts)
        key = ("marginals", 4)
        marginals = predictor.graph.parts(texts, (key,))[key]
        expected = [[predictor.labels[j] for j in np.argsort(-row, kind="stable")[:2]] for row in marginals]
        assert [p.labels for p in predicted] == expected
        predictor.save(tmp_path / "run")
        saved = json.loads((tmp_path / "run" / artifacts.DECISION).read_text())
        assert saved["metric"] == "micro-f1"
        assert saved["decisions"]["micro-f1"] == {"rule": "top-two", "linear_weight": 0.0, "beam_size": 4}
        loaded = mlgen.load(tmp_path / "run")
        assert loaded.decision == predictor.decision and loaded.predict(texts) == [p.labels for p in predicted]
        served = predictor.serving().serve(np.array(texts, dtype=object))
        assert [[x.decode() for x in row[:n]] for row, n in zip(served["labels"].numpy(), served["num_labels"])] == (
            expected
        )
    finally:
        predictor.decision = fitted


def test_a_policy_round_trips_through_its_file(tiny_run, tmp_path):
    predictor, folder = tiny_run
    marginal = Marginal(linear_weight=0.0, head_weight=0.25, threshold=0.3, beam_size=5)
    per_label = dataclasses.replace(marginal, threshold=tuple(np.linspace(0.1, 0.9, predictor.vocab.num_labels)))
    policies = [
        DecisionPolicy((marginal, Mode(beam_size=2)), {"mode": {"micro_f1": 0.5}}, "marginal"),
        DecisionPolicy.fitted(
            {
                "micro-f1": marginal,
                "macro-f1": per_label,
                "samples-f1": ExpectedF1(temperature=0.5, beam_size=3),
                "subset-accuracy": Mode(beam_size=2),
                "hamming": marginal,
            },
            "samples-f1",
            {"samples-f1": {"samples_f1": 0.4}},
            others=(Mode(beam_size=1),),
        ),
    ]
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    for policy in policies:
        data = json.loads(json.dumps(policy.to_json()))
        assert data["format"] == 3 and data["metric"] == policy.metric
        (copy / artifacts.DECISION).write_text(json.dumps(data))
        loaded = mlgen.load(copy).decision
        assert loaded == policy and loaded.rule(metric="macro-f1" if len(policy.metrics) > 1 else None)
    first = json.loads(json.dumps(policies[0].to_json()))
    assert first["decisions"] == {"micro-f1": {"rule": "marginal", **dataclasses.asdict(marginal)}}
    assert first["rules"] == {"mode": {"linear_weight": 0.0, "beam_size": 2}}  # asked for by name only
    loaded = mlgen.load(copy).decision
    assert loaded.default.name == "expected-f1" and loaded.rule("mode") == Mode(beam_size=2)
    assert loaded.rule(metric="macro-f1").threshold == pytest.approx(per_label.threshold)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format=4), "has format 4; this mlgen reads formats 1 to 3: upgrade mlgen"),
        (lambda d: d.update(metric="greedy"), r'"metric": "greedy", not one of its decisions \(micro-f1, '),
        (lambda d: d["decisions"].update(speed={}), r'a decision for "speed", not one of micro-f1, macro-f1'),
        (
            lambda d: d["decisions"]["hamming"].update(width=3),
            r'"decisions.hamming.width", which mode rules do not have',
        ),
        (
            lambda d: d["decisions"]["micro-f1"].pop("beam_size"),
            r'no "decisions.micro-f1.beam_size" for its mode rule',
        ),
        (
            lambda d: d["decisions"]["subset-accuracy"].update(beam_size=9),
            r'"decisions.subset-accuracy.beam_size": 9, not a whole number from 1 to 8',
        ),
        (lambda d: d["decisions"]["macro-f1"].update(rule="magic"), r'a rule "magic", not one of'),
        (lambda d: d.update(format=2), 'no "rules"'),
    ],
)
def test_a_damaged_policy_file_names_the_key_at_fault(tiny_run, tmp_path, edit, message):
    _, folder = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(folder, copy)
    data = json.loads((copy / artifacts.DECISION).read_text())
    edit(data)
    (copy / artifacts.DECISION).write_text(json.dumps(data))
    with pytest.raises(InputError, match=message) as err:
        mlgen.load(copy)
    assert str(err.value).startswith(f"{copy}: decision.json ")
    assert "\n" not in str(err.value)


def test_the_numpy_and_tensorflow_choices_agree(cnn_br_ensemble, tiny_data):
    """linear-br decides in NumPy (no TensorFlow), the neural types in the compiled graph: the same rule."""
    predictor, _ = cnn_br_ensemble
    texts = tiny_data["test"].texts
    scores = predictor.graph.parts(texts, ("network",))["network"]
    for rule in (Threshold(threshold=0.5, always_top=True), Threshold(threshold=0.2), Threshold(threshold=0.99)):
        graph = predictor.graph.predict(texts, rule, max_labels=2)
        numpy = rule.outputs(ArrayOps(network=scores, max_labels=2))
        assert graph["num_labels"].tolist() == numpy["num_labels"].tolist()
        width = numpy["label_ids"].shape[1]
        np.testing.assert_array_equal(graph["label_ids"][:, :width], numpy["label_ids"])
        np.testing.assert_allclose(graph["scores"][:, :width], numpy["scores"], rtol=1e-6)


def test_info_reports_the_default_rule_and_its_numbers(ensemble_run):
    from mlgen.cli.info import describe

    predictor, run = ensemble_run
    rule = predictor.decision.default
    fitted_for = {metric: rule.name for metric, rule in predictor.decision.metrics.items()}
    assert list(fitted_for) == ["micro-f1", "macro-f1", "samples-f1", "subset-accuracy", "hamming"]
    assert describe(run)["decision"] == {
        "metric": "micro-f1",
        "rule": rule.name,
        **dataclasses.asdict(rule),
        "fitted_for": fitted_for,
        "calibration": json.loads(json.dumps(dataclasses.asdict(predictor.decision.calibration))),
    }
