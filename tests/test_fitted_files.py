"""Issue 25: every size a user or a run folder's file gives is bounded, every fitted number is
checked on load, a cnn-rnn folder must hold its decision, fitted estimators pickle, and the
messages speak the words of the door the user came through."""

import json
import pickle
import shutil
from pathlib import Path

import pytest
from sklearn.base import clone

import mlgen
from mlgen import artifacts
from mlgen.cli import main
from mlgen.errors import InputError, names_for

FIXTURES = Path(__file__).parent / "fixtures" / "runs_0.2.0"


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def _copy(folder, tmp_path, name="run"):
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return copy


def _edit(folder, name, **changes):
    path = folder / name
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# --- sizes a user gives -----------------------------------------------------------------------------


def test_beam_size_and_max_labels_are_bounded_by_the_number_of_labels(tiny_run):
    predictor, _ = tiny_run  # 8 labels
    with names_for("cli"):
        with pytest.raises(InputError, match=r"--beam-size must be at most 8 \(this model has 8 labels"):
            predictor.predict(["wheat"], beam_size=1000)
        with pytest.raises(InputError, match=r"--max-labels must be at most 8 \(this model has 8 labels\), got 1000"):
            predictor.predict(["wheat"], max_labels=1000)
        with pytest.raises(InputError, match="--beam-size must be at most 8"):
            predictor.serving(beam_size=1000)  # mlgen export
    with pytest.raises(InputError, match=r"^beam_size=1000: must be at most 8"):
        predictor.predict(["wheat"], beam_size=1000)
    assert len(predictor.predict(["wheat"], beam_size=8, max_labels=8)) == 1  # the bound itself is fine


def test_max_labels_is_bounded_for_binary_relevance(linear_run):
    predictor, _ = linear_run
    with pytest.raises(InputError, match=r"max_labels=1000: must be at most 8"):
        predictor.predict(["wheat"], max_labels=1000)


def test_the_cli_refuses_a_beam_wider_than_the_labels(tiny_run, tiny_csvs, tmp_path, capsys):
    _, run = tiny_run
    argv = ["predict", "--model", run, "--input", tiny_csvs["test"], "--output", tmp_path / "o.csv"]
    assert main([*argv, "--beam-size", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error: --beam-size must be at most 8") and err.count("\n") == 1, err
    assert main(["export", "--model", run, "--out", tmp_path / "export", "--beam-size", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error: --beam-size must be at most 8") and err.count("\n") == 1, err
    assert not (tmp_path / "export").exists()


def test_a_search_never_runs_more_steps_than_there_are_labels(tiny_run):
    import numpy as np

    predictor, _ = tiny_run
    from mlgen.nn import inference

    model = predictor.model
    ids, _, _ = inference.generate(
        model, model.text_vectorizer(np.array(["wheat"], dtype=object)), np.zeros((1, 8), np.float32), 1, 1000
    )
    assert ids.shape == (1, 9)  # 8 labels and EOS, not 1,001 steps


def test_a_wide_beam_searches_fewer_documents_at_a_time():
    from mlgen.nn.prediction import MAX_SEARCH_ROWS, search_batch_size

    assert search_batch_size(2048, 5) == 2048
    assert search_batch_size(2048, 736) * 736 <= MAX_SEARCH_ROWS
    assert search_batch_size(64, 10**9) == 1


# --- sizes and numbers a run folder's files give ----------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"beam_size": 1000},
            r'decision.json is not a decision rule mlgen wrote \("beam_size": 1000, not a whole number',
        ),
        ({"beam_size": 1000000000}, r'"beam_size": 1000000000, not a whole number from 2 to 8'),
        ({"beam_size": True}, r'"beam_size": true, not a whole number'),
        ({"beam_size": 1}, r'"beam_size": 1, not a whole number from 2 to 8'),
        ({"linear_weight": 1e308}, r'"linear_weight": 1e\+308, not a finite number from 0 to 1000'),
        ({"threshold": 3.0}, r'"threshold": 3.0, not a finite number from 0 to 1'),
        ({"head_weight": 0.6, "linear_mix": 0.6}, r'"head_weight" and "linear_mix" add up to more than 1'),
        ({"dev_scores": {"mode": {"micro_f1": float("nan")}}}, r'"dev_scores.mode.micro_f1": NaN, not a finite'),
    ],
)
def test_every_number_in_decision_json_is_checked(tmp_path, changes, message):
    run = _copy(FIXTURES / "cnn-rnn", tmp_path)  # marginal rule with the linear-br ensemble
    _edit(run, artifacts.DECISION, **changes)
    with pytest.raises(InputError, match=message) as err:
        mlgen.load(run)
    assert _one_line(err).startswith(f"{run}: decision.json")


def test_a_beam_size_in_config_json_is_bounded(tmp_path):
    run = _copy(FIXTURES / "cnn-rnn", tmp_path)
    model = json.loads((run / "config.json").read_text())["model"]
    _edit(run, "config.json", model={**model, "beam_size": 1000})
    with pytest.raises(InputError, match=r'config.json has "beam_size": 1000 under "model", more than') as err:
        mlgen.load(run)
    _one_line(err)
    _edit(run, "config.json", model={**model, "max_labels": 10**12})
    with pytest.raises(InputError, match=r"config.json has a bad 'model' value \(\"max_labels\": 1000000000000: "):
        mlgen.load(run)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"linear_weight": 1e308}, r'thresholds.json has "linear_weight": 1e\+308, not a finite number from 0 to 1000'),
        ({"linear_mix": -0.1}, r'thresholds.json has "linear_mix": -0.1, not a finite number from 0 to 1'),
        ({"threshold": 5.0}, r'thresholds.json has "threshold": 5.0, not a finite number from 0 to 1'),
        ({"threshold": [0.5] * 7 + ["x"]}, r'thresholds.json has "threshold\[7\]": "x", not a finite number'),
        ({"dev_scores": {"network": {"micro_f1": 2}}}, r'"dev_scores.network.micro_f1": 2, not a finite number'),
    ],
)
def test_every_number_in_thresholds_json_is_checked(tmp_path, changes, message):
    run = _copy(FIXTURES / "cnn-br", tmp_path)
    _edit(run, artifacts.THRESHOLDS, **changes)
    with pytest.raises(InputError, match=message) as err:
        mlgen.load(run)
    assert _one_line(err).startswith(f"{run}: thresholds.json")


def test_a_linear_br_threshold_is_a_margin(linear_run, tmp_path):
    run = _copy(linear_run[1], tmp_path)
    saved = json.loads((run / artifacts.THRESHOLDS).read_text())
    decisions = saved["decisions"]
    rule = decisions["micro-f1"]
    _edit(run, artifacts.THRESHOLDS, decisions={**decisions, "micro-f1": {**rule, "threshold": -1.5}})  # any margin
    assert mlgen.load(run).threshold == -1.5
    _edit(run, artifacts.THRESHOLDS, decisions={**decisions, "micro-f1": {**rule, "threshold": float("inf")}})
    with pytest.raises(InputError, match=r'thresholds.json has "decisions.micro-f1.threshold": Infinity, not a fin'):
        mlgen.load(run)


# --- a cnn-rnn folder must hold its decision ---------------------------------------------------------


def test_a_cnn_rnn_folder_without_decision_json_is_refused(tiny_run, tmp_path, capsys):
    run = _copy(tiny_run[1], tmp_path)
    (run / artifacts.DECISION).unlink()
    with pytest.raises(InputError, match=r"decision.json is missing: mlgen 0.3.0 writes it beside every cnn-rnn"):
        mlgen.load(run)
    assert main(["export", "--model", run, "--out", tmp_path / "export"]) == 2
    assert "decision.json is missing" in capsys.readouterr().err


def test_a_folder_from_before_decisions_still_loads_without_one(tmp_path):
    run = _copy(FIXTURES / "cnn-rnn", tmp_path)  # written by mlgen 0.2.0
    (run / artifacts.DECISION).unlink()
    loaded = mlgen.load(run)
    assert loaded.decision == loaded.default_decision()


# --- messages ----------------------------------------------------------------------------------------


def test_a_label_name_mismatch_says_which_names_differ(tiny_run, tmp_path):
    run = _copy(tiny_run[1], tmp_path)
    vocab = json.loads((run / "label_vocab.json").read_text())
    labels = vocab["labels"]
    renamed = [*labels[:-1], "bananas"]
    (run / "label_vocab.json").write_text(json.dumps({**vocab, "labels": renamed}))
    with pytest.raises(InputError, match=rf"'bananas' instead of the model's '{labels[-1]}'"):
        mlgen.load(run)
    swapped = [labels[1], labels[0], *labels[2:]]
    (run / "label_vocab.json").write_text(json.dumps({**vocab, "labels": swapped}))
    with pytest.raises(InputError, match=rf"in another order: label 1 is '{labels[1]}', the model's '{labels[0]}'"):
        mlgen.load(run)


def test_an_ensemble_folder_without_linear_npz_names_the_ensemble(tmp_path):
    run = _copy(FIXTURES / "cnn-rnn", tmp_path)
    (run / "linear.npz").unlink()
    with pytest.raises(InputError, match=r"linear.npz is missing: it holds the linear-br ensemble") as err:
        mlgen.load(run)
    assert "instead" not in _one_line(err)


def test_the_python_api_names_parameters_as_python_does(tiny_data, capsys, tmp_path):
    clf = mlgen.LinearBinaryRelevanceClassifier().set_params(C=-1)
    with pytest.raises(InputError, match=r"^C=-1: must be at least 1e-09$"):
        clf.fit(tiny_data["train"].texts, tiny_data["train"].label_sets)
    argv = ["train", "--model", "linear-br", "--train", "x.csv", "--out", tmp_path / "x", "--C", "-1"]
    assert main(argv) == 2
    assert "--C must be at least 1e-09" in capsys.readouterr().err


def test_an_out_folder_in_a_symlink_loop_is_one_line(tmp_path, tiny_csvs, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InputError, match="--out goes through a loop of symbolic links"):
        artifacts.check_out_dir(tmp_path / "a")
    argv = ["train", "--model", "linear-br", "--train", tiny_csvs["train"], "--out", tmp_path / "a" / "run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error:") and "loop of symbolic links" in err and err.count("\n") == 1, err


# --- pickling ----------------------------------------------------------------------------------------


def test_an_unfitted_estimator_pickles_and_clones():
    clf = mlgen.LabelSequenceClassifier(beam_size=3)
    again = pickle.loads(pickle.dumps(clf))
    assert again.get_params() == clf.get_params()
    assert clone(again).get_params()["beam_size"] == 3


@pytest.mark.parametrize("name", ["LabelSequenceClassifier", "CNNBinaryRelevanceClassifier"])
def test_a_fitted_estimator_pickles_with_identical_predictions(tiny_data, name):
    from conftest import TINY_MODEL

    cls = getattr(mlgen, name)
    params = {k: v for k, v in TINY_MODEL.items() if k in cls().get_params()}
    train = tiny_data["train"].subset(range(80))
    clf = cls(**params, epochs=1, embeddings=None, ema_momentum=0.0).fit(train.texts, train.label_sets)
    texts = tiny_data["test"].texts[:20]
    again = pickle.loads(pickle.dumps(clf))
    assert again.predict(texts) == clf.predict(texts)
    assert (again.predict_proba(texts) == clf.predict_proba(texts)).all()
    assert list(again.classes_) == list(clf.classes_) and again.get_params() == clf.get_params()
    assert clone(again).get_params() == clf.get_params()
