"""Encoder and decoder cell: shapes, config round trips, serialization inside a model."""

import keras
import numpy as np
import pytest

from mlgen.config import ModelConfig
from mlgen.nn.label_sequence import LabelSequenceModel
from mlgen.nn.layers.decoder_cell import LabelDecoderCell
from mlgen.nn.layers.encoder import CNNTextEncoder


def test_encoder_shape_and_config_round_trip():
    encoder = CNNTextEncoder(
        vocab_size=50, embedding_dim=8, filter_sizes=(2, 3), num_filters=4, dropout=0.1, word_dropout=0.0
    )
    ids = np.random.default_rng(0).integers(0, 50, (3, 12)).astype("int32")
    features = encoder(ids)
    assert features.shape == (3, 8) and encoder.output_dim == 8
    clone = CNNTextEncoder.from_config(encoder.get_config())
    clone(ids)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(ids)), np.asarray(features))
    assert clone.get_config() == encoder.get_config()


def test_encoder_maps_are_per_width():
    encoder = CNNTextEncoder(
        vocab_size=50, embedding_dim=8, filter_sizes=(2, 5), num_filters=4, dropout=0.0, word_dropout=0.0
    )
    maps = encoder.feature_maps(np.ones((2, 10), "int32"))
    assert [tuple(m.shape) for m in maps] == [(2, 9, 4), (2, 6, 4)]


def test_encoder_returns_position_features_from_the_same_pass():
    encoder = CNNTextEncoder(
        vocab_size=50, embedding_dim=8, filter_sizes=(2, 3), num_filters=4, dropout=0.0, word_dropout=0.0
    )
    ids = np.random.default_rng(0).integers(1, 50, (3, 12)).astype("int32")
    ids[1, 7:] = 0
    features, (memory, mask) = encoder(ids, return_positions=True)
    expected_memory, expected_mask = encoder.position_features(ids)
    np.testing.assert_array_equal(np.asarray(expected_mask), ids > 0)
    np.testing.assert_array_equal(np.asarray(features), np.asarray(encoder(ids)))
    np.testing.assert_array_equal(np.asarray(memory), np.asarray(expected_memory))
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(expected_mask))
    assert memory.shape == (3, 12, 8)


def test_word_dropout_replaces_real_tokens_with_the_oov_id_in_training_only():
    keras.utils.set_random_seed(0)
    encoder = CNNTextEncoder(50, 8, (2,), 4, dropout=0.0, word_dropout=0.3)  # only word dropout is random
    ids = np.random.default_rng(0).integers(2, 50, (64, 40)).astype("int32")
    ids[:, 30:] = 0  # padding
    dropped = np.asarray(encoder.drop_words(ids))
    changed = dropped != ids
    assert np.all(dropped[changed] == 1) and not changed[:, 30:].any()
    assert 0.25 < changed[:, :30].mean() < 0.35
    assert (np.asarray(encoder.drop_words(ids)) != dropped).any()  # a fresh draw per call
    np.testing.assert_array_equal(np.asarray(encoder(ids)), np.asarray(encoder(ids, training=False)))
    assert not np.allclose(np.asarray(encoder(ids, training=True)), np.asarray(encoder(ids, training=False)))
    assert CNNTextEncoder.from_config(encoder.get_config()).word_dropout == 0.3


def test_word_dropout_leaves_the_initial_weights_alone():
    def initial_weights(word_dropout):
        keras.utils.set_random_seed(0)
        config = ModelConfig(
            max_tokens=50, sequence_length=10, embedding_dim=8, filter_sizes=(2,), num_filters=4,
            decoder_units=8, label_embedding_dim=4, word_dropout=word_dropout,
        )  # fmt: skip
        model = LabelSequenceModel(["a", "b"], config)
        model.build(((None, 10), (None, None)))
        return [np.asarray(w) for w in model.trainable_weights]

    for with_dropout, without in zip(initial_weights(0.1), initial_weights(0.0), strict=True):
        np.testing.assert_array_equal(with_dropout, without)


def test_pretrained_constant_initializer_does_not_bloat_the_config():
    matrix = np.arange(50 * 8, dtype="float32").reshape(50, 8)
    encoder = CNNTextEncoder(50, 8, (2,), 4, 0.0, 0.0, embeddings_initializer=keras.initializers.Constant(matrix))
    encoder(np.ones((1, 4), "int32"))
    np.testing.assert_array_equal(np.asarray(encoder.embedding.embeddings), matrix)
    assert "Constant" not in str(encoder.get_config()["embeddings_initializer"])


@keras.saving.register_keras_serializable(package="mlgen_tests")
class TinyDecoder(keras.Model):
    """The cell run by `keras.layers.RNN`, started from a context, as `LabelSequenceModel` does."""

    def __init__(self, cell_type="gru", **kwargs):
        super().__init__(**kwargs)
        self.cell_type = cell_type
        self.cell = LabelDecoderCell(units=6, features_dim=5, cell_type=cell_type, num_layers=1, context="concat")
        self.rnn = keras.layers.RNN(self.cell, return_sequences=True)

    def call(self, inputs):
        labels, context = inputs
        return self.rnn(labels, initial_state=self.cell.initial_state(context))

    def get_config(self):
        return {**super().get_config(), "cell_type": self.cell_type}


def _cell_model(cell_type):
    model = TinyDecoder(cell_type)
    model([np.ones((1, 2, 3), "float32"), np.ones((1, 5), "float32")])
    return model, model.cell


def test_cell_state_sizes_and_steps():
    for cell_type, n_core in (("lstm", 2), ("gru", 1), ("simple", 1)):
        model, cell = _cell_model(cell_type)
        assert cell.state_size == [6] * n_core + [5] and cell.output_size == 6
        out = model([np.ones((2, 4, 3), "float32"), np.ones((2, 5), "float32")])
        assert out.shape == (2, 4, 6)
        # One step by hand: the context rides along unchanged as the last state.
        states = cell.initial_state(np.ones((2, 5), "float32"))
        step_out, new_states = cell(np.ones((2, 3), "float32"), states)
        assert step_out.shape == (2, 6)
        np.testing.assert_array_equal(np.asarray(new_states[-1]), np.ones((2, 5)))


def test_simple_cell_state_is_its_output():
    _, cell = _cell_model("simple")
    states = cell.initial_state(np.ones((2, 5), "float32"))
    out, new_states = cell(np.ones((2, 3), "float32"), states)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(new_states[0]))


def test_cell_config_round_trip_and_save_load(tmp_path):
    model, cell = _cell_model("lstm")
    config = cell.get_config()
    assert LabelDecoderCell.from_config(config).get_config() == config
    inputs = [np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32"), np.ones((2, 5), "float32")]
    before = np.asarray(model(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), before)


@pytest.mark.parametrize("cell_type", ["gru", "lstm", "simple"])
@pytest.mark.parametrize("context, layers", [("concat", 1), ("init", 1), ("add", 2), ("mlp", 2), ("concat", 2)])
def test_decoding_step_matches_the_cell(cell_type, context, layers):
    rng = np.random.default_rng(3)
    cell = LabelDecoderCell(units=6, features_dim=5, cell_type=cell_type, num_layers=layers, context=context)
    cell.build((None, 3))
    for weight in cell.weights:  # nonzero biases too, so every term is exercised
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
    context_vector = rng.normal(size=(4, 5)).astype("float32")
    states, fast_states = cell.initial_state(context_vector), cell.decoding_state(context_vector)
    for step in range(3):
        inputs = rng.normal(size=(4, 3)).astype("float32")
        output, states = cell(inputs, states, training=False)
        fast_output, fast_states = cell.decoding_step(inputs, fast_states)
        np.testing.assert_allclose(np.asarray(fast_output), np.asarray(output), atol=1e-5)


SMALL = dict(
    max_tokens=50, sequence_length=10, embedding_dim=6, filter_sizes=(2,), num_filters=4, dropout=0.4,
    word_dropout=0.2, decoder_units=8, label_embedding_dim=4, max_labels=3,
)  # fmt: skip


def test_the_networks_take_every_size_from_the_model_config_and_save_it_whole():
    from mlgen.nn.binary_relevance import BinaryRelevanceModel

    config = ModelConfig(**SMALL, cell="lstm", context="mlp")
    model = LabelSequenceModel(["a", "b"], config)
    encoder = model.encoder
    assert (encoder.embedding_dim, encoder.num_filters, encoder.dropout, encoder.word_dropout) == (6, 4, 0.4, 0.2)
    assert model.cell.cell_type == "lstm" and model.cell.context == "mlp" and model.cell.units == 8
    assert model.max_labels == 3 and model.sequence_length == 10
    assert LabelSequenceModel.from_config(model.get_config()).model_config == config
    network = BinaryRelevanceModel(["a"], config)
    assert network.encoder.word_dropout == 0.2
    assert BinaryRelevanceModel.from_config(network.get_config()).model_config == config


def test_a_network_config_of_mlgen_0_2_flat_arguments_still_loads():
    old = {**SMALL, "filter_sizes": [2], "labels": ["a", "b"], "name": "label_sequence_model", "trainable": True}
    old.update(cell="gru", targets="model", loss="set", feedback="hard", attention="none", context="concat")
    model = LabelSequenceModel.from_config(old)
    assert model.labels == ["a", "b"] and model.name == "label_sequence_model"
    assert model.model_config == ModelConfig(**SMALL, label_order="model", loss="set")
