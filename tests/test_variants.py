"""The decoder variants: cells and layers, context injection, attention, scheduled
sampling, label orders (and the encoder's word dropout). Each trains, decodes and survives save/load."""

import dataclasses

import numpy as np
import pytest
from conftest import TINY_MODEL

import mlgen
from mlgen import registry
from mlgen.config import ModelConfig, TrainConfig, load_json
from mlgen.data import read_labelled_csv
from mlgen.errors import InputError
from mlgen.nn import inference, targets
from mlgen.nn.layers.attention import LuongAttention
from mlgen.nn.layers.decoder_cell import LabelDecoderCell

# Every option value appears at least once; options are combined so that each tiny
# model (about 13 s to train, decode and reload) checks several, and their interplay.
VARIANTS = [
    {"cell": "lstm", "decoder_layers": 2, "attention": "general", "scheduled_sampling": "inverse-sigmoid"},
    {"cell": "simple", "context": "init", "label_order": "shuffle", "word_dropout": 0.2},
    {"context": "add", "attention": "dot", "feedback": "global", "label_order": "model"},
    {"context": "mlp", "decoder_layers": 2, "attention": "concat", "scheduled_sampling": "exponential"},
    {"label_order": "model", "loss": "set", "scheduled_sampling": "linear", "sampling_rate": 1.0},
    {"label_order": "frequency", "feedback": "global"},
]


@pytest.fixture(scope="module")
def small(tiny_csvs):
    return read_labelled_csv(tiny_csvs["train"]).subset(range(150)), read_labelled_csv(tiny_csvs["dev"])


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_variant_trains_decodes_and_reloads(options, small, tmp_path):
    train, dev = small
    config = ModelConfig(**{**TINY_MODEL, "tune_eos_bias": False, **options})
    predictor = registry.fit(
        "cnn-rnn", train, dev, config, TrainConfig(epochs=2, embeddings=None, learning_rate=5e-3), verbose=0
    )
    assert predictor.history["loss"][-1] < predictor.history["loss"][0]
    texts = dev.texts[:20]
    for beam_size in (1, 3):
        for p in predictor.predict_scores(texts, beam_size=beam_size):
            assert 1 <= len(p.labels) == len(set(p.labels)) and set(p.labels) <= set(predictor.labels)
    predictor.save(tmp_path / "run")
    saved = load_json(tmp_path / "run" / "config.json")["model"]
    assert all(saved[k] == v for k, v in options.items())
    loaded = mlgen.load(tmp_path / "run")
    for beam_size in (1, 3):
        assert loaded.predict_scores(texts, beam_size=beam_size) == predictor.predict_scores(texts, beam_size=beam_size)
    if "scheduled_sampling" in options:
        expected = [
            targets.sampling_probability(options["scheduled_sampling"], e, config.sampling_rate) for e in (0, 1)
        ]
        assert predictor.history["sampling_probability"] == pytest.approx(expected)
    if "attention" in options:
        explanation = loaded.explain(texts[0])
        assert explanation.weights.shape == (len(explanation.labels), len(explanation.tokens))
        np.testing.assert_allclose(explanation.weights.sum(axis=1), 1.0, rtol=1e-5)


def test_attention_weights_sum_to_one_over_real_tokens_and_are_zero_on_padding():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(3, 4, 8)).astype("float32")
    memory = rng.normal(size=(3, 6, 5)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=bool)
    for score in ("dot", "general", "concat"):
        outputs, weights = LuongAttention(8, score)(query, memory, mask)
        weights = np.asarray(weights)
        assert outputs.shape == (3, 4, 8) and weights.shape == (3, 4, 6)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
        assert np.all(weights[~np.broadcast_to(mask[:, None, :], weights.shape)] == 0.0)
        np.testing.assert_allclose(weights[2, :, 0], 1.0)  # one real token takes all the weight


def test_attention_model_weights_are_zero_on_padding(small):
    train, dev = small
    config = ModelConfig(**{**TINY_MODEL, "attention": "general"})
    predictor = registry.fit("cnn-rnn", train, dev, config, TrainConfig(epochs=1, embeddings=None), verbose=0)
    model = predictor.model
    token_ids = np.asarray(model.text_vectorizer(np.array(["wheat exports rose", dev.texts[0]])))
    decoder_input = np.array([[1, 3, 4], [1, 3, 0]], dtype="int32")
    weights = np.asarray(model.attention_weights(token_ids, decoder_input))
    assert weights.shape == (2, 3, model.sequence_length)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.all(weights[0, :, 3:] == 0.0)  # three real tokens, the rest padding


def test_explain_needs_attention(tiny_run):
    predictor, _ = tiny_run
    with pytest.raises(InputError, match="--attention"):
        predictor.explain("wheat exports rose")


@pytest.mark.parametrize("context, step_dim", [("concat", 3 + 5), ("init", 3), ("add", 3), ("mlp", 3 + 6)])
def test_context_modes_and_stacked_layers(context, step_dim):
    cell = LabelDecoderCell(units=6, features_dim=5, cell_type="lstm", num_layers=2, context=context)
    cell.build((None, 3))
    assert cell.cores[0].kernel.shape[0] == step_dim and cell.cores[1].kernel.shape[0] == 6
    assert cell.state_size == [6, 6, 6, 6, 5]
    states = cell.initial_state(np.ones((2, 5), "float32"))
    output, new_states = cell(np.ones((2, 3), "float32"), states)
    assert output.shape == (2, 6) and len(new_states) == 5
    assert LabelDecoderCell.from_config(cell.get_config()).get_config() == cell.get_config()


def test_sampling_schedules_grow_from_zero():
    for schedule in ("linear", "exponential", "inverse-sigmoid"):
        p = [targets.sampling_probability(schedule, e) for e in range(30)]
        assert p[0] == pytest.approx(0.0, abs=0.2) and all(b >= a for a, b in zip(p, p[1:])) and p[-1] <= 1.0
    assert targets.sampling_probability("linear", 10, 20.0) == 0.5
    assert targets.sampling_probability("exponential", 2, 0.5) == 0.75
    assert targets.sampling_probability("none", 10) == 0.0


def test_cli_trains_an_attention_model_and_draws_an_explanation(tiny_csvs, tmp_path, capsys):
    from conftest import TINY_FLAGS

    from mlgen.cli import main

    run, figure = tmp_path / "run", tmp_path / "why.png"
    flags = [*TINY_FLAGS, "--attention", "concat", "--context", "mlp", "--label-order", "shuffle"]
    assert main(["train", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"], "--out", run, *flags]) == 0
    capsys.readouterr()
    assert main(["explain", "--model", run, "--text", "wheat and corn exports rose", "--out", figure]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    *label_lines, last = printed.splitlines()
    assert last == f"wrote {figure}" and label_lines and all(": " in line for line in label_lines)
    config = load_json(run / "config.json")["model"]
    assert (config["attention"], config["context"], config["label_order"]) == ("concat", "mlp", "shuffle")


def test_cli_refuses_decoder_flags_for_baselines(capsys):
    from mlgen.cli import main

    assert main(["train", "--model", "cnn-br", "--attention", "dot", "--out", "x"]) == 2
    assert "--attention: not used by --model cnn-br" in capsys.readouterr().err


def test_scheduled_sampling_feeds_the_models_own_predictions(small):
    train, dev = small
    config = ModelConfig(**{**TINY_MODEL, "scheduled_sampling": "linear"})
    model = registry.fit("cnn-rnn", train, dev, config, TrainConfig(epochs=1, embeddings=None), verbose=0).model
    token_ids = np.asarray(model.text_vectorizer(np.array(dev.texts[:8])))
    gold = np.array([[1, 3, 4, 0], [1, 5, 0, 0]] * 4, dtype="int32")
    states, memory = model.initial_states(token_ids, training=False)
    outputs, _ = model.decoder_outputs(states, memory, gold, training=False)
    logits = np.array(model.head(outputs))
    logits[..., :2] = -np.inf  # never PAD or BOS
    own = np.concatenate([gold[:, :1], logits.argmax(-1)[:, :-1]], axis=1)
    sampling = targets.SequenceTargets(model)
    for probability, expected in ((0.0, gold), (1.0, np.where(gold > 0, own, 0))):
        model.sampling_probability.assign(probability)
        np.testing.assert_array_equal(np.asarray(sampling.decoder_input(states, memory, gold)), expected)


def _training_pairs(tiny_run, tiny_csvs, label_order, loss="sequence", n=8):
    """`SequenceTargets.pairs` of the tiny run's model on its first `n` training documents, as
    numpy `(token_ids, decoder_input, target)`, with `label_order` and `loss` set for the call."""
    from mlgen.nn import preprocessing

    predictor, _ = tiny_run
    model = predictor.model
    data = read_labelled_csv(tiny_csvs["train"]).subset(range(n))
    documents = preprocessing.documents(model.text_vectorizer, data, predictor.vocab)
    sequence_targets = targets.SequenceTargets(model)
    (batch,) = sequence_targets.make_dataset(documents, batch_size=n).take(1)
    config = model.model_config
    model.model_config = dataclasses.replace(config, label_order=label_order, loss=loss)
    try:
        (token_ids, decoder_input), target = sequence_targets.pairs(batch)
    finally:
        model.model_config = config
    return np.asarray(token_ids), np.asarray(decoder_input), np.asarray(target), data.label_sets


def test_model_order_targets_rank_each_documents_gold_labels_by_the_model(tiny_run, tiny_csvs):
    from keras import ops

    from mlgen.data.vocab import BOS_ID, EOS_ID, PAD_ID

    predictor, _ = tiny_run
    token_ids, decoder_input, target, label_sets = _training_pairs(tiny_run, tiny_csvs, "model")
    step_fn, states = inference.step_function(predictor.model, token_ids)
    logits, _ = step_fn(ops.full((len(token_ids),), BOS_ID, dtype="int32"), states)
    logits = np.asarray(logits)
    assert any(len(labels) > 1 for labels in label_sets)
    for row, labels in enumerate(label_sets):
        n, fed = len(labels), decoder_input[row]
        gold_ids = sorted(predictor.vocab.id(label) for label in labels)
        assert fed[0] == BOS_ID and sorted(fed[1 : n + 1]) == gold_ids and (fed[n + 1 :] == PAD_ID).all()
        assert target[row, :n].tolist() == fed[1 : n + 1].tolist() and target[row, n] == EOS_ID
        assert fed[1] == max(gold_ids, key=lambda i: logits[row, i])  # the model's favourite gold label first


def test_set_loss_targets_are_the_gold_labels_not_yet_fed(tiny_run, tiny_csvs):
    from mlgen.data.vocab import EOS_ID, NUM_SPECIAL, PAD_ID

    predictor, _ = tiny_run
    _, decoder_input, target, label_sets = _training_pairs(tiny_run, tiny_csvs, "model", "set")
    for row, labels in enumerate(label_sets):
        gold = {predictor.vocab.id(label) for label in labels}
        for t in range(target.shape[1]):
            wanted = set(np.flatnonzero(target[row, t]).tolist())
            fed = set(decoder_input[row, : t + 1].tolist()) - {PAD_ID}
            if t < len(labels):
                assert wanted == gold - fed and all(i >= NUM_SPECIAL for i in wanted)
            else:
                assert wanted == ({EOS_ID} if t == len(labels) else set())


def test_set_cross_entropy_is_minus_log_the_probability_of_the_set():
    from mlgen.nn.targets import SetCrossEntropy

    logits = np.log(np.array([[[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]]], "float32"))
    y_true = np.array([[[0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]], "float32")  # the last step is PAD
    loss = float(SetCrossEntropy()(y_true, logits))
    assert loss == pytest.approx((-np.log(0.7) - np.log(0.25)) / 2, rel=1e-5)


def test_set_loss_needs_the_models_order():
    with pytest.raises(InputError, match="loss='set' needs label_order='model'"):
        ModelConfig(loss="set")


def test_global_feedback_mixes_the_label_embedding_with_the_expected_one():
    from mlgen.nn.label_sequence import LabelSequenceModel

    model = LabelSequenceModel(["a", "b", "c"], ModelConfig(**TINY_MODEL_ARGS, feedback="global"))
    model.build(((None, 8), (None, None)))
    table = np.asarray(model.label_embedding.embeddings)
    ids = np.array([3, 4, 5])
    embedded = table[ids]
    same = np.eye(6, dtype="float32")[ids]  # the previous step was sure of the label fed
    np.testing.assert_allclose(np.asarray(model._feedback_input(embedded, same)), embedded, rtol=1e-5, atol=1e-6)
    uniform = np.full((3, 6), 1 / 6, "float32")
    mixed = np.asarray(model._feedback_input(embedded, uniform))
    mean = table.mean(axis=0)
    gate = np.asarray(model.feedback_gate(np.concatenate([embedded, np.tile(mean, (3, 1))], axis=1)))
    np.testing.assert_allclose(mixed, (1 - gate) * embedded + gate * mean, rtol=1e-5, atol=1e-6)
    assert not np.allclose(mixed, embedded)


TINY_MODEL_ARGS = dict(
    max_tokens=50, sequence_length=8, embedding_dim=4, filter_sizes=(2,), num_filters=4, decoder_units=4,
    label_embedding_dim=4,
)  # fmt: skip
