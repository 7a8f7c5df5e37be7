"""`tf.data` input pipeline: documents in memory or streamed, as token ids and teacher-forcing pairs, batched."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from mlgen.artifacts import running
from mlgen.data.stream import LabelledStream
from mlgen.data.summary import DataSummary
from mlgen.data.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, LabelVocabulary
from mlgen.errors import InputError, option

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
    and label ids (`tf.io.serialize_tensor`, ZLIB-compressed). Returns the files in order.

    Raises:
        InputError: when `folder`'s file system is full (or a file-size limit is reached),
            saying how much was written and how much the records need; as `stream.chunks`
            does when a training file changed since `scan` checked it.
    """
    paths, docs, written = [], 0, 0
    for index, data in enumerate(stream.chunks()):
        token_ids = vectorize(vectorizer, data.texts)
        label_ids = vocab.label_ids(data.label_sets, stream.summary.longest, rows=data.rows)
        paths.append(str(Path(folder) / f"chunk-{index:06d}.tfrecord"))
        try:
            with tf.io.TFRecordWriter(paths[-1], options=RECORD_OPTIONS) as writer:
                writer.write(tf.io.serialize_tensor(token_ids).numpy())
                writer.write(tf.io.serialize_tensor(label_ids).numpy())
        except (tf.errors.ResourceExhaustedError, tf.errors.OutOfRangeError, OSError) as err:
            if isinstance(err, OSError) and err.errno not in _FULL:
                raise
            raise _no_space(folder, err, written, docs, len(stream)) from None
        written += os.path.getsize(paths[-1])
        docs += len(data)
    return paths


# What a full disk (or a file-size limit) raises while records are written: ENOSPC and EDQUOT
# reach TensorFlow as `ResourceExhaustedError`, EFBIG as `OutOfRangeError`.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _no_space(folder, err, written: int, docs: int, total: int) -> InputError:
    """The one-line error of a records folder that ran out of room."""
    reason = str(getattr(err, "message", None) or getattr(err, "strerror", None) or err).strip().splitlines()[-1]
    reason = reason.split("; ")[-1]  # TensorFlow's message starts with the file's path
    if docs:
        done = (
            f"{_mib(written)} written for {docs:,} of {total:,} documents, about {_mib(written * total / docs)} for all"
        )
    else:
        done = f"nothing written yet of the {total:,} training documents"
    return InputError(
        f"{folder}: the training records do not fit ({reason}): {done}; "
        "free space there or set TMPDIR to a folder with more room"
    )


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


# The records folder of a streamed run: `mlgen-records-PID-XXXXXXXX` (`tempfile`'s random
# part), holding nothing but `write_records`' chunk files.
RECORDS_PREFIX = "mlgen-records-"
_RECORDS_FOLDER = re.compile(re.escape(RECORDS_PREFIX) + r"(\d+)-[a-z0-9_]{8}")
_RECORDS_FILE = re.compile(r"chunk-\d{6}\.tfrecord")


@contextlib.contextmanager
def records_folder() -> Iterator[str]:
    """A new folder for a streamed run's records in the temporary folder (`TMPDIR`), named
    for this process and removed when the block ends, however it ends (an error, Ctrl-C,
    the CLI's SIGTERM). What a killed run left there is removed first (`remove_dead_records`)."""
    parent = tempfile.gettempdir()
    remove_dead_records(parent)
    with tempfile.TemporaryDirectory(prefix=f"{RECORDS_PREFIX}{os.getpid()}-", dir=parent) as folder:
        yield folder


def remove_dead_records(parent) -> list[Path]:
    """Removes the records folders in `parent` whose process no longer runs (a streamed run
    killed by SIGKILL, or by SIGTERM outside the CLI); returns them.

    Only folders with `records_folder`'s name and nothing in them but chunk files are
    touched: whatever else is there, a user's, is left as it is.
    """
    removed = []
    with contextlib.suppress(OSError):
        for entry in sorted(Path(parent).iterdir()):
            match = _RECORDS_FOLDER.fullmatch(entry.name)
            if not match or running(int(match.group(1))) or entry.is_symlink() or not entry.is_dir():
                continue
            try:
                files = list(entry.iterdir())
            except OSError:
                continue
            if not all(_RECORDS_FILE.fullmatch(f.name) and f.is_file() and not f.is_symlink() for f in files):
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


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


def training_batches(num_docs: int, batch_size: int, replicas: int) -> tuple[int, bool]:
    """`(batch_size, drop_remainder)` for training `num_docs` documents on `replicas` replicas.

    `tf.distribute` splits every batch among the replicas. A share can be empty (a last
    batch of one document on two workers), and an empty batch breaks oneDNN's CPU kernels
    (a convolution or matrix product on zero rows returns a wrongly shaped result: an
    `InvalidArgumentError` in the worker), so on several replicas every batch is full:
    a batch of known size, which `tf.distribute` splits evenly, the last partial batch left
    out (fewer than `batch_size` documents, others every epoch as the order is reshuffled),
    and at most `num_docs` documents. One replica: `batch_size`, nothing left out.

    Raises:
        InputError: when a batch cannot give every replica a document.
    """
    if replicas <= 1:
        return batch_size, False
    if batch_size < replicas:
        raise InputError(
            f"{option('batch_size', batch_size)} is less than the {replicas} workers: each worker trains on its "
            f"share of every batch; give {option('batch_size', replicas)} or more"
        )
    if num_docs < replicas:
        raise InputError(
            f"{num_docs} training documents are fewer than the {replicas} workers: each needs a share of every "
            "batch; train on one worker"
        )
    return min(batch_size, num_docs), True


def validation_batch_size(num_docs: int, batch_size: int, replicas: int) -> int | None:
    """A batch size near `batch_size` whose every batch of `num_docs` documents gives each of
    `replicas` replicas at least one document, or None when there is none (fewer documents
    than replicas): then the dev loss is not computed on several workers.

    The last batch keeps its documents (its size is not known to `tf.distribute`, which
    splits a batch of `r` into pieces of `ceil(r / replicas)` documents, the last ones
    shorter or empty: `shares`).
    """
    if replicas <= 1:
        return batch_size
    first = min(batch_size, num_docs)
    for size in [*range(first, num_docs + 1), *range(first - 1, 0, -1)]:
        last = num_docs % size
        if min(shares(size, replicas)) > 0 and (last == 0 or min(shares(last, replicas)) > 0):
            return size
    return None


def shares(batch: int, replicas: int) -> list[int]:
    """How `tf.distribute` splits a batch of `batch` documents whose size it does not know in
    advance among `replicas` replicas: pieces of `ceil(batch / replicas)` in order, the last
    shorter, then empty ones (`tf.data`'s legacy rebatch)."""
    piece = -(-batch // replicas)
    return [max(0, min(piece, batch - i * piece)) for i in range(replicas)]


def make_dataset(
    documents: tf.data.Dataset,
    *,
    batch_size: int,
    shuffle: bool = False,
    buffer: int = 0,
    seed: int = 0,
    shuffle_labels: bool = False,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of `((token_ids, decoder_input), decoder_target)` for the sequence model.

    Args:
        documents: `documents(...)`.
        batch_size: documents per batch.
        shuffle: reshuffle every epoch (training data only), `buffer` documents at a
            time (`shuffle_buffer`), seeded by `seed`.
        shuffle_labels: put each document's labels in a fresh random order every
            epoch (`--label-order shuffle`), seeded by `seed`.
        drop_remainder: leave out a last batch of fewer than `batch_size` documents
            (training on several workers: `training_batches`).

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
    return dataset.batch(batch_size, drop_remainder=drop_remainder).map(_teacher_forcing).prefetch(tf.data.AUTOTUNE)


def make_multi_hot_dataset(
    documents: tf.data.Dataset,
    num_labels: int,
    *,
    batch_size: int,
    shuffle: bool = False,
    buffer: int = 0,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of `(token_ids, targets)` for binary relevance (arguments as `make_dataset`).

    Yields:
        token ids `(batch, sequence_length)` and float32 0/1 targets
        `(batch, num_labels)`, columns in the vocabulary's label order.
    """

    def multi_hot(token_ids, label_ids):  # PAD - NUM_SPECIAL < 0: an all-zero row of one_hot
        return token_ids, tf.reduce_sum(tf.one_hot(label_ids - NUM_SPECIAL, num_labels, dtype=tf.float32), axis=1)

    dataset = _shuffled(documents, shuffle, buffer, seed)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).map(multi_hot).prefetch(tf.data.AUTOTUNE)


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
