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


def test_shares_are_how_tf_distribute_splits_a_batch_of_unknown_size():
    from tensorflow.python.data.experimental.ops.distribute import _LegacyRebatchDataset

    for batch, replicas in [(1, 2), (3, 2), (7, 4), (4, 3), (5, 3), (256, 3), (2, 2)]:
        pieces = _LegacyRebatchDataset(tf.data.Dataset.range(batch).batch(batch), replicas)
        assert [len(piece) for piece in pieces] == preprocessing.shares(batch, replicas), (batch, replicas)


def test_on_several_workers_no_batch_leaves_a_worker_without_documents():
    import pytest

    from mlgen.errors import InputError

    # One process: the batch size as given, the last batch as it falls.
    assert preprocessing.training_batches(337, 16, 1) == (16, False)
    # Several: every training batch full (a last one of 337 % 16 = 1 document would leave a worker none).
    assert preprocessing.training_batches(337, 16, 2) == (16, True)
    assert preprocessing.training_batches(10, 32, 2) == (10, True)  # fewer documents than a batch: one batch
    with pytest.raises(InputError, match=r"^batch_size=1 is less than the 2 workers"):
        preprocessing.training_batches(337, 1, 2)
    with pytest.raises(InputError, match=r"^1 training documents are fewer than the 2 workers"):
        preprocessing.training_batches(1, 32, 2)
    # Dev keeps every document: a batch size whose every batch, the last too, splits.
    assert preprocessing.validation_batch_size(257, 256, 1) == 256
    assert preprocessing.validation_batch_size(257, 256, 2) == 257  # not 256 + 1
    assert preprocessing.validation_batch_size(43, 256, 2) == 43
    assert preprocessing.validation_batch_size(5, 256, 3) == 5
    for docs, replicas in [(257, 2), (1000, 3), (517, 4), (43, 2)]:
        size = preprocessing.validation_batch_size(docs, 256, replicas)
        last = docs % size
        assert min(preprocessing.shares(size, replicas)) > 0 and (not last or min(preprocessing.shares(last, replicas)))
    assert preprocessing.validation_batch_size(1, 256, 2) is None  # fewer documents than workers
    assert preprocessing.validation_batch_size(4, 256, 3) is None


def test_dropping_the_remainder_gives_full_batches_of_a_known_size():
    vocab = LabelVocabulary.build([["a"], ["b"]])
    documents = _documents(np.arange(7, dtype="int32").reshape(7, 1), [["a"], ["b"]] * 3 + [["a"]], vocab)
    batches = preprocessing.make_dataset(documents, batch_size=3, drop_remainder=True)
    assert [b[0][0].shape[0] for b in batches] == [3, 3]
    assert batches.element_spec[0][0].shape[0] == 3  # known: tf.distribute splits it evenly
    multi_hot = preprocessing.make_multi_hot_dataset(documents, 2, batch_size=3, drop_remainder=True)
    assert [b[0].shape[0] for b in multi_hot] == [3, 3]
