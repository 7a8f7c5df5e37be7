"""Pretrained word vectors: text files, the bundled GloVe source, and training from them."""

import numpy as np
import pytest
from conftest import TINY_MODEL

from mlgen.config import ModelConfig, TrainConfig
from mlgen.data import read_labelled_csv
from mlgen.data.embeddings import GLOVE_6B_50D, load_word_vectors
from mlgen.errors import InputError


def test_text_file_vectors(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nwheat 0.5 -1\nprices 2 3\nunused 9 9\n")  # word2vec header, then GloVe lines
    matrix, found = load_word_vectors(path, ["", "[UNK]", "wheat", "prices", "rose"], dim=2, num_rows=7)
    assert found == 2 and matrix.shape == (7, 2)
    np.testing.assert_array_equal(matrix[2:4], [[0.5, -1], [2, 3]])
    assert np.all(matrix[0] == 0) and np.all(np.abs(matrix[4:]) <= 0.05)


def test_text_file_errors(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("wheat 0.5 -1\nprices 2 x\n")
    with pytest.raises(InputError, match="--embedding-dim"):
        load_word_vectors(path, ["", "wheat"], dim=3)
    with pytest.raises(InputError, match="line 2 holds a value that is not a number"):
        load_word_vectors(path, ["", "wheat", "prices"], dim=2)
    with pytest.raises(InputError, match="no such word-vector file"):
        load_word_vectors(tmp_path / "none.txt", ["", "wheat"], dim=2)


def test_named_glove_vectors():
    matrix, found = load_word_vectors(GLOVE_6B_50D, ["", "[UNK]", "the", "wheat", "zzqqxxyy"], dim=50)
    assert found == 2 and matrix.shape == (5, 50)
    assert np.abs(matrix[2]).max() > 0.1 and np.abs(matrix[4]).max() <= 0.05  # real vector vs random start
    # "wheat" and "corn" are close in GloVe; "wheat" and "the" are not.
    vectors, _ = load_word_vectors(GLOVE_6B_50D, ["", "wheat", "corn", "the"], dim=50)
    unit = vectors[1:] / np.linalg.norm(vectors[1:], axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.2
    with pytest.raises(InputError, match="set embedding_dim=50"):
        load_word_vectors(GLOVE_6B_50D, ["", "the"], dim=16)


def test_none_means_a_random_start():
    assert TrainConfig(embeddings="none").embeddings is None
    assert TrainConfig().embeddings == GLOVE_6B_50D


@pytest.mark.parametrize("source", ["file", GLOVE_6B_50D])
def test_training_starts_from_the_vectors(source, tiny_csvs, tmp_path):
    from mlgen.registry import fit

    dim = 50 if source == GLOVE_6B_50D else 16
    if source == "file":
        source = str(tmp_path / "v.txt")
        (tmp_path / "v.txt").write_text("the " + " ".join(["0.25"] * dim) + "\n")
    expected, _ = load_word_vectors(source, ["", "the"], dim=dim)
    train = read_labelled_csv(tiny_csvs["train"]).subset(range(60))
    model_config = ModelConfig(**{**TINY_MODEL, "embedding_dim": dim})
    predictor = fit(
        "cnn-rnn", train, None, model_config, TrainConfig(epochs=1, learning_rate=0.0, embeddings=source), verbose=0
    )
    row = predictor.model.text_vectorizer.get_vocabulary().index("the")
    np.testing.assert_array_equal(np.asarray(predictor.model.encoder.embedding.embeddings)[row], expected[1])
