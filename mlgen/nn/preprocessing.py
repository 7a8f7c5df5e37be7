"""`tf.data` input pipeline: documents in memory or streamed, as token ids and teacher-forcing pairs, batched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from mlgen.data.stream import LabelledStream
from mlgen.data.summary import DataSummary
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, LabelVocabulary

_CHUNK = 2048
# `choose_sequence_length`: the longest window chosen from data (200 won on the Reuters dev split).
MAX_AUTO_LENGTH = 200


def choose_sequence_length(summary: DataSummary, minimum: int = 1, quantile: float = 0.99) -> int:
    """A token window from the training texts: their word counts' `quantile` (`summary`,
    a `DataSummary`), within [`minimum`, `MAX_AUTO_LENGTH`]. Short texts (titles) then
    pay for little padding."""
    chosen = int(np.ceil(summary.word_count_quantile(quantile))) if summary.num_docs else MAX_AUTO_LENGTH
    return max(minimum, min(MAX_AUTO_LENGTH, chosen))


def adapt_vectorizer(vectorizer, texts: Sequence[str]) -> None:
    """Builds the `TextVectorization` vocabulary from (training) texts only."""
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(_CHUNK))


def vectorize(vectorizer, texts: Sequence[str]) -> np.ndarray:
    """Token ids, int32 `(len(texts), sequence_length)`, 0 for padding."""
    chunks = [vectorizer(tf.constant(list(texts[i : i + _CHUNK]), tf.string)) for i in range(0, len(texts), _CHUNK)]
    return tf.concat(chunks, axis=0).numpy().astype(np.int32)


def documents(vectorizer, data, vocab: LabelVocabulary, folder=None, seed: int = 0) -> tf.data.Dataset:
    """One element per document: `(token_ids, label_ids)`, int32 `(sequence_length,)` and
    `(width,)`, the labels in generation order, PAD after (`LabelVocabulary.label_ids`).

    Args:
        vectorizer: the adapted `TextVectorization`.
        data: `LabelledData` in memory (vectorized once, here), or a `LabelledStream`:
            read, vectorized and encoded chunk by chunk once, into one TFRecord file
            per chunk under `folder` (`write_records`), which every pass then reads (in
            an order reshuffled each pass, seeded by `seed`) with no Python in the loop.
            `width` is then the stream's largest label set.
        vocab: maps the labels to ids; every label must be in it.
        folder: where a stream's records go (a temporary folder the caller removes).
    """
    if isinstance(data, LabelledStream):
        if folder is None:
            raise ValueError("a streamed training set is written to records first: give `folder`")
        paths = write_records(vectorizer, data, vocab, folder)
        dataset = read_records(paths, (vectorizer.get_config()["output_sequence_length"], data.summary.longest), seed)
        # The count from `scan`: Keras then knows an epoch's steps before the first ends.
        return dataset.apply(tf.data.experimental.assert_cardinality(len(data)))
    label_ids = vocab.label_ids(data.label_sets, rows=data.rows)
    return tf.data.Dataset.from_tensor_slices((vectorize(vectorizer, data.texts), label_ids))


def shuffle_buffer(data) -> int:
    """Documents the training shuffle holds: all of them in memory, `STREAM_SHUFFLE_DOCS` streamed."""
    return STREAM_SHUFFLE_DOCS if isinstance(data, LabelledStream) else len(data)


# Documents in the shuffle buffer of streamed training (`tf.data.Dataset.shuffle`).
STREAM_SHUFFLE_DOCS = 20_000


def write_records(vectorizer, stream: LabelledStream, vocab: LabelVocabulary, folder) -> list[str]:
    """Each chunk of `stream` as one TFRecord file in `folder`: one record holding its token ids
    and label ids (`tf.io.serialize_tensor`, ZLIB-compressed). Returns the files in order."""
    paths = []
    for index, data in enumerate(stream.chunks()):
        token_ids = vectorize(vectorizer, data.texts)
        label_ids = vocab.label_ids(data.label_sets, stream.summary.longest, rows=data.rows)
        paths.append(str(Path(folder) / f"chunk-{index:06d}.tfrecord"))
        with tf.io.TFRecordWriter(paths[-1], options=RECORD_OPTIONS) as writer:
            writer.write(tf.io.serialize_tensor(token_ids).numpy())
            writer.write(tf.io.serialize_tensor(label_ids).numpy())
    return paths


RECORD_OPTIONS = tf.io.TFRecordOptions(compression_type="ZLIB")


def read_records(paths: Sequence[str], widths: tuple[int, int], seed: int = 0) -> tf.data.Dataset:
    """The documents `write_records` wrote (`widths`: of their token ids and label ids), the
    chunk files in a seeded order reshuffled every pass.

    Every worker reads every file and keeps its share of the batches (auto-shard by data):
    files are chunks, and there can be fewer than workers.
    """
    sequence_length, width = widths

    def chunk(path):
        records = tf.data.TFRecordDataset(path, compression_type="ZLIB").batch(2).get_single_element()
        token_ids = tf.ensure_shape(tf.io.parse_tensor(records[0], tf.int32), [None, sequence_length])
        label_ids = tf.ensure_shape(tf.io.parse_tensor(records[1], tf.int32), [None, width])
        return tf.data.Dataset.from_tensor_slices((token_ids, label_ids))

    files = tf.data.Dataset.from_tensor_slices(list(paths)).shuffle(len(paths), seed=seed)
    dataset = files.flat_map(chunk)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def make_dataset(
    documents: tf.data.Dataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    buffer: int = 0,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> tf.data.Dataset:
    """Batches of `((token_ids, decoder_input), decoder_target)` for the sequence model.

    Args:
        documents: `documents(...)`.
        batch_size: documents per batch.
        shuffle: reshuffle every epoch (training data only), `buffer` documents at a
            time (`shuffle_buffer`), seeded by `seed`.
        shuffle_labels: put each document's labels in a fresh random order every
            epoch (`--label-order shuffle`), seeded by `seed`.

    Yields:
        token ids `(batch, sequence_length)`, decoder input `(batch, steps)` =
        BOS + labels, decoder target `(batch, steps)` = labels + EOS; PAD after.
        `steps` is the batch's longest set + 1, so the decoder never runs over a
        column that is padding in every row.
    """
    dataset = _shuffled(documents, shuffle, buffer, seed)
    if shuffle_labels:
        # One random number per document and epoch (fresh each pass, reproducible by seed).
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, draws).map(_shuffle_labels)
    return dataset.batch(batch_size).map(_teacher_forcing).prefetch(tf.data.AUTOTUNE)


def make_multi_hot_dataset(
    documents: tf.data.Dataset,
    num_labels: int,
    *,
    batch_size: int,
    shuffle: bool = False,
    buffer: int = 0,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of `(token_ids, targets)` for binary relevance (arguments as `make_dataset`).

    Yields:
        token ids `(batch, sequence_length)` and float32 0/1 targets
        `(batch, num_labels)`, columns in the vocabulary's label order.
    """

    def multi_hot(token_ids, label_ids):  # PAD - NUM_SPECIAL < 0: an all-zero row of one_hot
        return token_ids, tf.reduce_sum(tf.one_hot(label_ids - NUM_SPECIAL, num_labels, dtype=tf.float32), axis=1)

    dataset = _shuffled(documents, shuffle, buffer, seed)
    return dataset.batch(batch_size).map(multi_hot).prefetch(tf.data.AUTOTUNE)


def _shuffled(documents, shuffle: bool, buffer: int, seed: int) -> tf.data.Dataset:
    if not shuffle:
        return documents
    if buffer < 1:
        raise ValueError(f"a shuffle needs a buffer of at least one document, got {buffer}")
    return documents.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)


def _shuffle_labels(document, draw):
    """One document's label ids in a random order (PAD stays after them)."""
    token_ids, label_ids = document
    count = tf.reduce_sum(tf.cast(label_ids >= NUM_SPECIAL, tf.int32))
    keys = tf.random.stateless_uniform([count], seed=tf.stack([draw, tf.constant(0, tf.int64)]))
    labels = tf.gather(label_ids[:count], tf.argsort(keys))
    return token_ids, tf.concat([labels, label_ids[count:]], axis=0)


def _teacher_forcing(token_ids, label_ids):
    """A batch's label ids `(batch, width)` -> `(token_ids, BOS + labels), labels + EOS`,
    `steps` = the batch's longest set + 1 columns."""
    count = tf.reduce_sum(tf.cast(label_ids != PAD_ID, tf.int32), axis=1)
    steps = tf.reduce_max(count) + 1
    column = tf.zeros_like(label_ids[:, :1])
    decoder_input = tf.concat([column + BOS_ID, label_ids], axis=1)[:, :steps]
    decoder_target = tf.concat([label_ids, column + PAD_ID], axis=1)[:, :steps]
    decoder_target += EOS_ID * tf.one_hot(count, steps, dtype=tf.int32)  # PAD_ID is 0: EOS where the set ends
    return (token_ids, decoder_input), decoder_target
