"""The trained tiny model: the loop learns, decoding feeds back, the run folder round-trips."""

import json

import keras
import numpy as np
import pytest

import mlgen
from mlgen import artifacts
from mlgen.config import DECISION_METRICS
from mlgen.data import read_labelled_csv
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID
from mlgen.decisions import DecisionPolicy, Mode, fit
from mlgen.errors import InputError
from mlgen.nn import inference


def test_training_lowers_the_loss_and_logs_dev_scores(tiny_run):
    predictor, _ = tiny_run
    history = predictor.history
    assert history["loss"][-1] < history["loss"][0]
    assert np.all(np.isfinite(history["loss"]))
    assert len(history["val_micro_f1"]) == predictor.metrics["epochs_run"] == 2
    # The kept epoch's dev score, then the EOS bias tuned on dev can only raise it.
    assert predictor.metrics["dev"]["micro_f1"] >= max(history["val_micro_f1"])
    assert all(docs_per_s > 0 for docs_per_s in history["train_docs_per_s"])
    assert predictor.metrics["dev"]["n_docs"] == 80


def test_run_folder_holds_every_artifact(tiny_run):
    _, folder = tiny_run
    for name in (artifacts.MODEL, artifacts.CONFIG, artifacts.LABEL_VOCAB, artifacts.METRICS, artifacts.HISTORY):
        assert (folder / name).is_file(), name
    config = json.loads((folder / artifacts.CONFIG).read_text())
    assert config["model_type"] == "cnn-rnn"
    assert config["model"]["filter_sizes"] == [2, 3] and config["model"]["max_labels"] >= 1
    assert config["train"]["epochs"] == 2 and config["train"]["seed"] == 0


def test_reload_gives_identical_predictions(tiny_run, tiny_csvs):
    predictor, folder = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    loaded = mlgen.load(folder)
    for beam_size in (1, 3):
        before = predictor.predict_scores(texts, beam_size=beam_size)
        after = loaded.predict_scores(texts, beam_size=beam_size)
        assert before == after  # labels, scores and log-probabilities, bit for bit


def test_predictions_are_label_sets_with_scores(tiny_run, tiny_csvs):
    predictor, _ = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    max_labels = predictor.model_config.max_labels
    for beam_size in (1, 4):
        for p in predictor.predict_scores(texts, beam_size=beam_size):
            assert 1 <= len(p.labels) <= max_labels  # min_labels=1 by default
            assert len(set(p.labels)) == len(p.labels)
            assert set(p.labels) <= set(predictor.labels)
            assert all(0.0 < s <= 1.0 for s in p.scores) and len(p.scores) == len(p.labels)
            assert p.log_prob <= sum(np.log(p.scores)) + 1e-4  # EOS adds its own log-probability
    greedy = predictor.predict_scores(texts, beam_size=1)
    beam = predictor.predict_scores(texts, beam_size=4)
    # Beam search never returns a less probable sequence than greedy (up to float noise).
    assert all(b.log_prob >= g.log_prob - 1e-4 for b, g in zip(beam, greedy))


def test_max_labels_caps_decoding(tiny_run, tiny_csvs):
    predictor, _ = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:20]
    ids, _, _ = _search(predictor, texts, 1, max_labels=1)
    assert ids.shape == (20, 2) and np.all(ids[:, 0] > EOS_ID) and np.all(ids[:, 1] == EOS_ID)
    for beam_size in (1, 3):
        assert all(len(labels) == 1 for labels in predictor.predict(texts, beam_size=beam_size, max_labels=1))
    with pytest.raises(InputError, match="max_labels=0: must be at least 1"):
        predictor.predict(texts, max_labels=0)


def test_eos_bias_is_tuned_on_dev_and_trades_precision_for_recall(tiny_run, tiny_csvs):
    predictor, folder = tiny_run
    bias = float(predictor.model.eos_bias.numpy())
    assert bias in predictor.EOS_BIASES
    assert float(mlgen.load(folder).model.eos_bias.numpy()) == bias
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    sizes = {}
    try:
        for b in (-5.0, 5.0):
            predictor.model.eos_bias.assign(b)
            sizes[b] = np.mean([len(labels) for labels in predictor.predict(texts)])
    finally:
        predictor.model.eos_bias.assign(bias)
    assert sizes[-5.0] > sizes[5.0] == 1.0  # min_labels 1: a large bias stops right after it


def test_label_head_adds_its_weighted_log_probabilities_to_every_step(tiny_run):
    predictor, folder = tiny_run
    model = predictor.model
    weight = float(model.label_prior_weight.numpy())
    assert weight in predictor.PRIOR_WEIGHTS  # tuned on dev
    assert float(mlgen.load(folder).model.label_prior_weight.numpy()) == weight
    token_ids = np.asarray(model.text_vectorizer(np.array(["wheat and corn exports rose", "profit fell"])))
    prior = np.asarray(keras.ops.log_sigmoid(model.label_head(model.encoder(token_ids))))  # (2, num_labels)
    logits = {}
    try:
        for w in (0.0, 2.0):
            model.label_prior_weight.assign(w)
            step_fn, states = inference.step_function(model, token_ids, beam_size=3)
            states = keras.tree.map_structure(lambda s: np.repeat(s, 3, axis=0), states)  # as beam search does
            docs = np.repeat(np.arange(2, dtype="int32"), 3)
            logits[w] = np.asarray(step_fn(np.full((6,), BOS_ID, "int32"), states, docs)[0])  # (6, num_label_ids)
    finally:
        model.label_prior_weight.assign(weight)
    shift = logits[2.0] - logits[0.0]
    np.testing.assert_allclose(shift[:, :NUM_SPECIAL], 0.0, atol=1e-5)
    np.testing.assert_allclose(shift[:, NUM_SPECIAL:], 2.0 * np.repeat(prior, 3, axis=0), atol=1e-4)


def test_teacher_forcing_pass_shapes(tiny_run):
    predictor, _ = tiny_run
    model = predictor.model
    token_ids = np.ones((3, model.sequence_length), "int32")
    decoder_input = np.array([[BOS_ID, 3, PAD_ID], [BOS_ID, 4, 5], [BOS_ID, PAD_ID, PAD_ID]], "int32")
    logits = model((token_ids, decoder_input))
    assert logits.shape == (3, 3, len(predictor.labels) + 3)


def test_predict_input_errors(tiny_run):
    predictor, _ = tiny_run
    with pytest.raises(InputError, match="list of texts"):
        predictor.predict("one string")
    with pytest.raises(InputError, match="item 1 is NoneType None, not a string"):
        predictor.predict(["fine", None])
    with pytest.raises(InputError, match="beam_size=0: must be at least 1"):
        predictor.predict(["fine"], beam_size=0)
    assert predictor.predict([]) == []


def test_min_labels_above_the_largest_training_set_is_refused_before_training():
    from mlgen import registry
    from mlgen.config import ModelConfig
    from mlgen.data import LabelledData

    single = LabelledData(texts=["a b c d e"] * 4, label_sets=[["x"], ["y"]] * 2, rows=[1, 2, 3, 4], source="t")
    with pytest.raises(InputError, match="min_labels=2 is more than the labels a document can get"):
        registry.fit("cnn-rnn", single, single, ModelConfig(min_labels=2), verbose=0)


def test_load_rejects_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="not an mlgen run folder"):
        mlgen.load(tmp_path)


def test_run_folders_get_the_umask_permissions_not_owner_only(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with artifacts.atomic_dir(tmp_path / "run") as staging:
            (staging / artifacts.CONFIG).write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755


def test_an_interrupted_replace_points_to_the_previous_run(tmp_path):
    (tmp_path / ".run.old-4242").mkdir()
    (tmp_path / ".run.old-4242" / artifacts.CONFIG).write_text("{}")
    with pytest.raises(
        InputError, match=r"run: missing; a save was interrupted .*/\.run\.old-4242: rename that folder to run"
    ):
        mlgen.load(tmp_path / "run")


def test_save_is_atomic(tiny_run, tmp_path, monkeypatch):
    predictor, _ = tiny_run
    folder = tmp_path / "run"
    predictor.save(folder)
    before = sorted(p.name for p in folder.iterdir())

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(predictor.vocab, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        predictor.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left behind
    assert mlgen.load(folder).predict(["wheat"]) == predictor.predict(["wheat"])


def test_save_refuses_to_replace_a_folder_that_is_not_a_run(tiny_run, tmp_path):
    predictor, _ = tiny_run
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"holds files mlgen did not write \(notes.txt\)"):
        predictor.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_seed_makes_training_reproducible(tiny_csvs):
    from conftest import TINY_MODEL

    from mlgen.config import ModelConfig, TrainConfig
    from mlgen.registry import fit

    train = read_labelled_csv(tiny_csvs["train"]).subset(range(120))
    config = ModelConfig(**TINY_MODEL)
    runs = [
        fit("cnn-rnn", train, None, config, TrainConfig(epochs=1, seed=7, embeddings=None), verbose=0) for _ in range(2)
    ]
    assert runs[0].history["loss"] == runs[1].history["loss"]
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_ema_momentum_keeps_the_averaged_weights(tiny_csvs, monkeypatch):
    """With Polyak averaging the kept weights are the moving average: at a momentum near 1
    they stay near the first step's weights while the raw weights travel on."""
    from conftest import TINY_MODEL

    from mlgen import registry
    from mlgen.config import ModelConfig, TrainConfig
    from mlgen.nn import training

    initial = []
    build = training.build_network

    def recording_build(*args, **kwargs):
        model = build(*args, **kwargs)
        initial[:] = [w.numpy() for w in model.trainable_weights]
        return model

    monkeypatch.setattr(training, "build_network", recording_build)
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(160))
    config = ModelConfig(**TINY_MODEL)

    def distance_travelled(ema_momentum):
        train_config = TrainConfig(epochs=1, seed=7, embeddings=None, ema_momentum=ema_momentum)
        predictor = registry.fit("cnn-rnn", train, None, config, train_config, verbose=0)
        return sum(float(np.abs(w.numpy() - w0).sum()) for w, w0 in zip(predictor.model.trainable_weights, initial))

    # One epoch is 5 Adam steps; the average holds about the first one.
    assert distance_travelled(0.9999) < 0.5 * distance_travelled(0.0)


def test_predict_batches_follow_text_length_and_do_not_change_predictions(tiny_run, tiny_csvs):
    from mlgen.nn.prediction import predict_batch_size

    assert predict_batch_size(200) == 256 and predict_batch_size(20) == 2048 and predict_batch_size(5000) == 64
    predictor, _ = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    for rule in (Mode(beam_size=1), Mode(beam_size=3)):
        by_default = predictor.graph.predict(texts, rule)
        in_sevens = predictor.graph.predict(texts, rule, batch_size=7)
        assert fit.label_sets(predictor.vocab, in_sevens) == fit.label_sets(predictor.vocab, by_default)


def test_two_pass_greedy_equals_one_pass(tiny_run, tiny_csvs):
    from mlgen.nn.prediction import FIRST_PASS_LABELS

    predictor, _ = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    bias, prior = float(predictor.model.eos_bias.numpy()), float(predictor.model.label_prior_weight.numpy())
    try:
        predictor.model.eos_bias.assign(-4.0)  # long sequences, so the second pass has work
        predictor.model.label_prior_weight.assign(0.0)
        two_pass = predictor.graph.predict(texts, Mode(beam_size=1), max_labels=6)
        ids, _, log_prob = _search(predictor, texts, 1, max_labels=6)
    finally:
        predictor.model.eos_bias.assign(bias)
        predictor.model.label_prior_weight.assign(prior)
    one_pass = [[predictor.labels[i - NUM_SPECIAL] for i in row[: list(row).index(EOS_ID)]] for row in ids]
    assert any(len(labels) > FIRST_PASS_LABELS for labels in one_pass)
    assert fit.label_sets(predictor.vocab, two_pass) == one_pass
    np.testing.assert_allclose(two_pass["log_prob"], log_prob, rtol=1e-5)


def _search(predictor, texts, beam_size, max_labels=None, return_beams=False):
    """The model's search over `texts` without a prior, as NumPy arrays (`mlgen.nn.inference.generate`)."""
    from mlgen.nn import inference

    model = predictor.model
    token_ids = model.text_vectorizer(np.array(texts, dtype=object))
    no_prior = np.zeros((len(texts), len(predictor.labels)), "float32")
    outputs = inference.generate(model, token_ids, no_prior, beam_size, max_labels, return_beams)
    return tuple(np.asarray(x) for x in outputs)


def test_a_run_folder_keras_cannot_load_is_a_clear_error(tiny_run, tmp_path, capsys):
    import shutil

    from mlgen.cli import main

    _, folder = tiny_run
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / artifacts.MODEL).write_bytes(b"not a keras file")
    with pytest.raises(InputError, match=r"broken: model.keras is damaged: not a readable .keras archive"):
        mlgen.load(broken)
    assert main(["predict", "--model", broken, "--input", "x.csv", "--output", tmp_path / "o.csv"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_diverged_run_errors_and_never_replaces_the_good_model(tiny_run, tiny_csvs, tmp_path, capsys):
    import shutil

    from conftest import TINY_FLAGS

    from mlgen.cli import main

    predictor, folder = tiny_run
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # A learning rate this large makes the loss NaN within a few batches (Keras would train on to `loss: nan`).
    argv = ["train", "--train", tiny_csvs["train"], "--out", run, *TINY_FLAGS, "--learning-rate", "1e30"]
    assert main([*argv, "--clipnorm", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mlgen: error: training diverged: the loss became nan in epoch 1")
    assert "nothing was saved" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:5]
    assert mlgen.load(run).predict(texts) == predictor.predict(texts)


@pytest.fixture
def marginal_run(tiny_run, tiny_csvs, tmp_path):
    """The tiny run with its marginal decision fitted on dev (restored afterwards)."""
    predictor, _ = tiny_run
    dev = read_labelled_csv(tiny_csvs["dev"])
    before = predictor.decision
    try:
        yield predictor, predictor.fit_decision(dev, "auto"), dev
    finally:
        predictor.decision = before


def test_label_marginals_are_each_labels_share_of_the_beam(tiny_run, tiny_csvs):
    predictor, _ = tiny_run
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:6]
    marginals = predictor.graph.parts(texts, (("marginals", 4),))[("marginals", 4)]
    ids, _, scores = _search(predictor, texts, 4, return_beams=True)
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    expected = np.zeros_like(marginals)
    for row in range(len(texts)):
        for beam in range(4):
            for i in ids[row, beam]:
                if i == EOS_ID:
                    break
                expected[row, i - NUM_SPECIAL] += weights[row, beam]
    np.testing.assert_allclose(marginals, expected, rtol=1e-5, atol=1e-6)
    assert marginals.shape == (6, len(predictor.labels)) and (marginals <= 1 + 1e-6).all()
    assert (marginals.sum(axis=1) >= 1 - 1e-5).all()  # min_labels 1: every hypothesis holds a label


def test_the_marginal_decision_is_fitted_on_dev_and_thresholds_the_marginals(marginal_run, tiny_csvs):
    predictor, decision, dev = marginal_run
    scores, default = decision.dev_scores, decision.default.name
    assert default in ("mode", "marginal") and set(scores) == {"mode", "marginal", *DECISION_METRICS}
    assert default == ("marginal" if scores["marginal"]["micro_f1"] > scores["mode"]["micro_f1"] else "mode")
    assert scores["mode"]["micro_f1"] == pytest.approx(predictor.metrics["dev"]["micro_f1"])
    marginal = decision.rule("marginal")
    assert marginal.head_weight in (0.0, *fit.HEAD_WEIGHTS)  # the tiny model has a label head
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:20]
    key = ("marginals", marginal.beam_size)
    parts = predictor.graph.parts(texts, (key, "head"))
    marginals = (1 - marginal.head_weight) * parts[key] + marginal.head_weight * parts["head"]
    limit = predictor.graph.max_labels(None)
    for row, prediction in zip(marginals, predictor.predict_scores(texts, decision="marginal")):
        by_score = np.argsort(-row, kind="stable")
        above = [j for j in by_score if row[j] >= np.broadcast_to(marginal.threshold, row.shape)[j]]
        assert prediction.labels == [predictor.labels[j] for j in (above or by_score[:1])[:limit]]
        assert prediction.scores == sorted(prediction.scores, reverse=True) and prediction.log_prob is None
    assert predictor.predict(texts) == predictor.predict(texts, decision=default)  # the default


def test_the_fitted_decision_survives_reload_and_is_the_default(marginal_run, tmp_path, tiny_csvs):
    predictor, decision, _ = marginal_run
    predictor.decision = DecisionPolicy((decision.rule("marginal"), decision.rule("mode")), decision.dev_scores)
    predictor.save(tmp_path / "run")
    loaded = mlgen.load(tmp_path / "run")
    assert loaded.decision == predictor.decision
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:20]
    assert loaded.predict(texts) == predictor.predict(texts, decision="marginal")
    assert loaded.predict(texts, decision="mode") == predictor.predict(texts, decision="mode")
    from mlgen.cli import main

    assert main(["evaluate", "--model", tmp_path / "run", "--data", tiny_csvs["test"], "--json"]) == 0


def test_decision_errors(tiny_run, tmp_path):
    predictor, folder = tiny_run
    with pytest.raises(InputError, match="decision='best': must be one of mode, marginal"):
        predictor.predict(["wheat"], decision="best")
    with pytest.raises(InputError, match="needs a decision fitted on dev; this model was trained with decision='mode'"):
        predictor.predict(["wheat"], decision="marginal")
    import shutil

    shutil.copytree(folder, tmp_path / "run")
    (tmp_path / "run" / "decision.json").write_text('{"rule": "magic"}')
    with pytest.raises(InputError, match="decision.json is not a decision rule mlgen wrote"):
        mlgen.load(tmp_path / "run")
    (tmp_path / "run" / "decision.json").unlink()  # mlgen 0.3 always writes it: its absence is damage
    with pytest.raises(InputError, match="decision.json is missing"):
        mlgen.load(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["mlgen_version"] = "0.2.0"  # a run folder from before decisions: the mode
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert mlgen.load(tmp_path / "run").decision == predictor.default_decision()


@pytest.mark.parametrize("decision", ["marginal", "auto"])
def test_training_fits_the_decision_and_saves_it(tiny_csvs, tmp_path, capsys, decision):
    from conftest import TINY_FLAGS

    from mlgen.cli import main

    run = tmp_path / "run"
    argv = ["train", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"], "--out", run, *TINY_FLAGS]
    assert main([*argv, "--decision", decision]) == 0
    saved = json.loads((run / "decision.json").read_text())
    micro = saved["decisions"]["micro-f1"]
    assert saved["format"] == 3 and saved["metric"] == "micro-f1"
    scores = saved["dev_scores"]
    better = scores["marginal"]["micro_f1"] > scores["mode"]["micro_f1"]
    assert micro["rule"] == ("marginal" if decision == "marginal" or better else "mode")
    marginals = [rule for rule in mlgen.load(run).decision.rules if rule.name == "marginal"]
    assert marginals and all(
        r.beam_size == 5 and 0 <= np.min(r.threshold) <= np.max(r.threshold) <= 1.001 for r in marginals
    )
    assert json.loads((run / "config.json").read_text())["model"]["decision"] == decision
    capsys.readouterr()
    for decision in ("marginal", "mode"):
        assert main(["evaluate", "--model", run, "--data", tiny_csvs["test"], "--json", "--decision", decision]) == 0
        assert json.loads(capsys.readouterr().out)["decision"] == decision
    with pytest.raises(InputError, match="takes its marginals over a beam of at least 2"):
        mlgen.load(run).predict(["wheat"], beam_size=1, decision="marginal")


def test_label_head_probabilities_are_the_heads_sigmoid(tiny_run, tiny_csvs):
    predictor, _ = tiny_run
    model = predictor.model
    texts = read_labelled_csv(tiny_csvs["test"]).texts[:5]
    features, _ = model.read(model.text_vectorizer(np.array(texts, dtype=object)), training=False)
    expected = 1 / (1 + np.exp(-np.asarray(model.label_head(features))))
    np.testing.assert_allclose(predictor.graph.parts(texts, ("head",))["head"], expected, rtol=1e-5, atol=1e-6)
