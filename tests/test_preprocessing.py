"""The tf.data pipeline: teacher-forcing batches, per-batch steps, vectorizer adapted on train only."""

import keras
import numpy as np
import tensorflow as tf

from mlgen.data import LabelledData
from mlgen.data.vocab import BOS_ID, EOS_ID, PAD_ID, LabelVocabulary
from mlgen.nn import preprocessing


def _documents(token_ids, label_sets, vocab):
    return tf.data.Dataset.from_tensor_slices((token_ids, vocab.label_ids(label_sets)))


def test_batches_hold_token_ids_and_teacher_forcing_pairs():
    vocab = LabelVocabulary.build([["a"], ["a", "b"], ["c", "a", "b"]])
    token_ids = np.arange(12, dtype="int32").reshape(4, 3)
    documents = _documents(token_ids, [["b", "a"], ["c"], ["a", "b", "c"], ["a"]], vocab)
    batches = list(preprocessing.make_dataset(documents, batch_size=2))
    (ids, decoder_input), decoder_target = batches[0]
    np.testing.assert_array_equal(ids, token_ids[:2])
    assert decoder_input.numpy().tolist() == [[BOS_ID, 3, 4], [BOS_ID, 5, PAD_ID]]
    assert decoder_target.numpy().tolist() == [[3, 4, EOS_ID], [5, EOS_ID, PAD_ID]]
    # Steps follow each batch's longest set: 3 + 1 in the second batch, not a global maximum.
    assert [b[0][1].shape[1] for b in batches] == [3, 4]


def test_shuffling_is_seeded_and_reshuffles_each_epoch():
    vocab = LabelVocabulary.build([["a"]])
    token_ids = np.arange(40, dtype="int32").reshape(40, 1)
    documents = _documents(token_ids, [["a"]] * 40, vocab)
    dataset = preprocessing.make_dataset(documents, batch_size=40, shuffle=True, buffer=40, seed=1)
    first, second = (next(iter(dataset))[0][0].numpy().ravel().tolist() for _ in range(2))
    again = next(iter(preprocessing.make_dataset(documents, batch_size=40, shuffle=True, buffer=40, seed=1)))
    assert sorted(first) == list(range(40)) and first != list(range(40))
    assert first != second  # a new order every epoch
    assert again[0][0].numpy().ravel().tolist() == first


def test_vectorizer_vocabulary_comes_from_training_texts_only(tiny_run, tiny_csvs):
    import re

    from mlgen.data import read_labelled_csv

    predictor, _ = tiny_run
    vocabulary = set(predictor.model.text_vectorizer.get_vocabulary())

    def words(path):
        texts = read_labelled_csv(path).texts
        return {w for t in texts for w in re.sub(r"[^\w\s]", "", t.lower()).split()}

    train_words, dev_words = words(tiny_csvs["train"]), words(tiny_csvs["dev"])
    dev_only = dev_words - train_words
    assert dev_only and not dev_only & vocabulary
    assert len(vocabulary & train_words) >= min(len(train_words), 1000 - 2) * 0.95
    word = sorted(dev_only)[0]
    ids = preprocessing.vectorize(predictor.model.text_vectorizer, [word])
    assert ids.shape == (1, predictor.model.sequence_length) and ids[0, 0] == 1  # the OOV id
    assert np.all(ids[0, 1:] == 0)


def test_vectorize_chunks_match_one_call():
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=4)
    texts = [f"word{i % 7} word{i % 3}" for i in range(5000)]
    preprocessing.adapt_vectorizer(vectorizer, texts)
    np.testing.assert_array_equal(preprocessing.vectorize(vectorizer, texts), np.asarray(vectorizer(np.array(texts))))


def test_sequence_length_is_chosen_from_the_training_texts():
    from mlgen.data.summary import DataSummary
    from mlgen.nn.preprocessing import MAX_AUTO_LENGTH, choose_sequence_length

    def summary(texts):
        return DataSummary.of(LabelledData(texts, [["a"]] * len(texts), list(range(len(texts))), "texts"))

    titles = [" ".join(["w"] * n) for n in range(1, 101)]  # 1..100 words
    assert choose_sequence_length(summary(titles)) == 100  # 99th percentile, rounded up
    assert choose_sequence_length(summary(titles), quantile=0.5) == 51
    assert choose_sequence_length(summary(["w"] * 10), minimum=5) == 5  # never shorter than the widest filter
    assert choose_sequence_length(summary(["w " * 1000])) == MAX_AUTO_LENGTH


def test_shuffled_label_order_changes_per_epoch_and_keeps_each_set():
    label_sets = [["a", "b", "c", "d"], ["c"], ["b", "d"]]
    vocab = LabelVocabulary.build(label_sets)
    token_ids = np.ones((3, 5), "int32")
    documents = _documents(token_ids, label_sets, vocab)
    dataset = preprocessing.make_dataset(documents, batch_size=3, shuffle_labels=True, seed=1)
    orders = []
    for _ in range(6):  # six epochs
        (_, decoder_input), target = next(iter(dataset))
        decoder_input, target = np.asarray(decoder_input), np.asarray(target)
        for row, labels in enumerate(label_sets):
            n = len(labels)
            assert sorted(vocab.to_labels(target[row, :n])) == sorted(labels) and target[row, n] == EOS_ID
            assert decoder_input[row, 0] == BOS_ID and list(decoder_input[row, 1 : n + 1]) == list(target[row, :n])
        orders.append(tuple(target[0, :4]))
    assert len(set(orders)) > 1
