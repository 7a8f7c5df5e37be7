"""The binary-relevance baselines: fit, predict, save and reload on a tiny CSV."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_MODEL, TINY_TRAIN

import mlgen
from mlgen import artifacts, registry
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig, load_json
from mlgen.decisions import DecisionPolicy, Threshold
from mlgen.errors import InputError
from mlgen.eval import metrics

CNN_BR_FIELDS = registry.MODEL_TYPES["cnn-br"].reads["model"]


@pytest.fixture(scope="session")
def cnn_br_run(tiny_data, tmp_path_factory):
    encoder = {k: v for k, v in TINY_MODEL.items() if k in CNN_BR_FIELDS}
    predictor = registry.fit(
        "cnn-br",
        tiny_data["train"],
        tiny_data["dev"],
        ModelConfig(**encoder, word_dropout=0.25),  # the encoder's options reach cnn-br too
        TrainConfig(**{**TINY_TRAIN, "learning_rate": 1e-2}),
        verbose=0,
    )
    folder = tmp_path_factory.mktemp("runs") / "cnn_br"
    predictor.save(folder)
    return predictor, folder


@pytest.mark.parametrize("run", ["linear_run", "cnn_br_run"])
def test_baseline_predicts_label_sets_and_reloads_identically(run, request, tiny_data):
    predictor, folder = request.getfixturevalue(run)
    texts = tiny_data["test"].texts
    predictions = predictor.predict_scores(texts)
    for p in predictions:
        assert 1 <= len(p.labels)  # always_top by default
        assert set(p.labels) <= set(predictor.labels) and len(set(p.labels)) == len(p.labels)
        assert p.scores == sorted(p.scores, reverse=True) and p.log_prob is None
    loaded = mlgen.load(folder)
    assert type(loaded) is type(predictor) and loaded.model_type == predictor.config["model_type"]
    assert loaded.predict_scores(texts) == predictions  # bit for bit
    assert np.array_equal(np.asarray(loaded.threshold), np.asarray(predictor.threshold))
    assert (folder / artifacts.THRESHOLDS).is_file()


def test_linear_br_learns_and_its_threshold_is_tuned_on_dev(linear_run, tiny_data):
    predictor, _ = linear_run
    assert predictor.metrics["dev"]["micro_f1"] > 0.7
    scores = metrics.evaluate(
        tiny_data["test"].label_sets, predictor.predict(tiny_data["test"].texts), predictor.labels
    )
    assert scores["micro_f1"] > 0.7
    assert predictor.threshold != 0.0  # moved off the SVM's natural margin by the dev data


def test_cnn_br_shares_the_encoder_and_learns(cnn_br_run):
    from mlgen.nn.layers.encoder import CNNTextEncoder

    predictor, folder = cnn_br_run
    assert isinstance(predictor.model.encoder, CNNTextEncoder)
    assert predictor.history["loss"][-1] < predictor.history["loss"][0]
    assert predictor.metrics["dev"]["micro_f1"] == max(predictor.history["val_micro_f1"])
    config = load_json(folder / artifacts.CONFIG)
    assert set(config["model"]) == set(CNN_BR_FIELDS) and config["baseline"]["threshold"] == "global"
    assert config["model"]["sequence_length"] == TINY_MODEL["sequence_length"] == predictor.model.sequence_length
    assert config["model"]["word_dropout"] == 0.25 == predictor.model.encoder.word_dropout


def test_always_top_off_can_leave_documents_empty(linear_run, tiny_data):
    predictor, _ = linear_run
    texts = tiny_data["test"].texts
    scores = predictor.label_scores(texts)
    fitted = predictor.decision
    try:
        out_of_reach = float(scores.max()) + 1.0  # nothing reaches it
        predictor.decision = DecisionPolicy((Threshold(threshold=out_of_reach, always_top=False),))
        assert all(p == [] for p in predictor.predict(texts))
        predictor.decision = DecisionPolicy((Threshold(threshold=out_of_reach, always_top=True),))
        top = [predictor.labels[j] for j in scores.argmax(axis=1)]
        assert predictor.predict(texts) == [[label] for label in top]
    finally:
        predictor.decision = fitted


def test_per_label_threshold_option(tiny_data):
    predictor = registry.fit(
        "linear-br",
        tiny_data["train"],
        tiny_data["dev"],
        baseline_config=BaselineConfig(threshold="per-label"),
        verbose=0,
    )
    assert np.shape(predictor.threshold) == (len(predictor.labels),)


def test_logistic_regression_scores_are_probabilities(tiny_data):
    predictor = registry.fit(
        "linear-br",
        tiny_data["train"],
        tiny_data["dev"],
        baseline_config=BaselineConfig(classifier="logreg", C=10),
        verbose=0,
    )
    scores = predictor.label_scores(tiny_data["test"].texts)
    assert scores.shape == (len(tiny_data["test"]), len(predictor.labels))
    assert scores.min() >= 0.0 and scores.max() <= 1.0


def test_beam_size_is_refused_for_binary_relevance(linear_run):
    predictor, _ = linear_run
    with pytest.raises(InputError, match="beam_size applies to cnn-rnn"):
        predictor.predict(["some text"], beam_size=3)


def test_max_labels_keeps_the_best_scores(linear_run, tiny_data):
    predictor, _ = linear_run
    texts = tiny_data["test"].texts
    full = predictor.predict_scores(texts)
    capped = predictor.predict_scores(texts, max_labels=1)
    assert [c.labels for c in capped] == [f.labels[:1] for f in full]


def test_linear_br_never_imports_tensorflow(tiny_csvs, tmp_path):
    run, out = tmp_path / "run", tmp_path / "out.csv"
    train, test = str(tiny_csvs["train"]), str(tiny_csvs["test"])
    commands = [
        ["train", "--model", "linear-br", "--train", train, "--out", str(run)],
        ["evaluate", "--model", str(run), "--data", test],
        ["predict", "--model", str(run), "--input", test, "--output", str(out)],
    ]
    code = (
        "import sys; from mlgen.cli import main\n"
        f"for argv in {commands!r}:\n    assert main(argv) == 0, argv\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.is_file()


def test_linear_br_learns_more_than_127_labels():
    # One keyword per label: a scrambled label matrix (as scikit-learn makes of int8 ones
    # wider than 127 columns) would score near zero.
    rng = np.random.default_rng(0)
    names = [f"tag{i}" for i in range(150)]
    texts, label_sets = [], []
    for _ in range(3):
        for i, name in enumerate(names):
            texts.append(f"keyword{i} " + " ".join(f"filler{j}" for j in rng.integers(0, 50, 5)))
            label_sets.append([name])
    data = mlgen.LabelledData(
        texts=texts, label_sets=label_sets, rows=list(range(1, len(texts) + 1)), source="synthetic"
    )
    predictor = registry.fit("linear-br", data.subset(range(300)), data.subset(range(300, 450)), verbose=0)
    assert len(predictor.labels) == 150
    assert predictor.metrics["dev"]["micro_f1"] > 0.9
