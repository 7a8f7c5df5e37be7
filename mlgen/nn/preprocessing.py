"""`tf.data` input pipeline: token ids and teacher-forcing pairs, batched."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mlgen.data.vocab import NUM_SPECIAL, LabelVocabulary

_CHUNK = 2048
# `choose_sequence_length`: the longest window chosen from data (200 won on the Reuters dev split).
MAX_AUTO_LENGTH = 200


def choose_sequence_length(texts: Sequence[str], minimum: int = 1, quantile: float = 0.99) -> int:
    """A token window from the training texts: their word counts' `quantile`, within
    [`minimum`, `MAX_AUTO_LENGTH`]. Short texts (titles) then pay for little padding."""
    counts = np.fromiter((len(str(t).split()) for t in texts), dtype=np.int64, count=len(texts))
    chosen = int(np.ceil(np.quantile(counts, quantile))) if len(counts) else MAX_AUTO_LENGTH
    return max(minimum, min(MAX_AUTO_LENGTH, chosen))


def adapt_vectorizer(vectorizer, texts: Sequence[str]) -> None:
    """Builds the `TextVectorization` vocabulary from (training) texts only."""
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(list(texts)).batch(_CHUNK))


def vectorize(vectorizer, texts: Sequence[str]) -> np.ndarray:
    """Token ids, int32 `(len(texts), sequence_length)`, 0 for padding."""
    chunks = [vectorizer(tf.constant(list(texts[i : i + _CHUNK]), tf.string)) for i in range(0, len(texts), _CHUNK)]
    return tf.concat(chunks, axis=0).numpy().astype(np.int32)


def make_dataset(
    token_ids: np.ndarray,
    label_sets: Sequence[Sequence[str]],
    vocab: LabelVocabulary,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    rows: Sequence[int] | None = None,
    shuffle_labels: bool = False,
) -> tf.data.Dataset:
    """Batches of `((token_ids, decoder_input), decoder_target)`.

    Args:
        token_ids: `(n, sequence_length)` from `vectorize`.
        label_sets: `n` label sets, every label in `vocab`.
        vocab: orders the labels and maps them to ids.
        batch_size: documents per batch.
        shuffle: reshuffle every epoch (training data only), seeded by `seed`.
        rows: data rows of the documents, for error messages.
        shuffle_labels: put each document's labels in a fresh random order every
            epoch (`--label-order shuffle`), seeded by `seed`.

    Yields:
        token ids `(batch, sequence_length)`, decoder input `(batch, steps)` =
        BOS + labels, decoder target `(batch, steps)` = labels + EOS; PAD after.
        `steps` is the batch's longest set + 1, so the decoder never runs over a
        column that is padding in every row.
    """
    decoder_input, decoder_target = vocab.encode_batch(label_sets, rows=rows)
    dataset = tf.data.Dataset.from_tensor_slices(((token_ids, decoder_input), decoder_target))
    if shuffle:
        dataset = dataset.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    if shuffle_labels:
        # One random number per document and epoch (fresh each pass, reproducible by seed).
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, draws).map(_shuffle_labels)
    return dataset.batch(batch_size).map(_trim_steps).prefetch(tf.data.AUTOTUNE)


def _shuffle_labels(example, draw):
    """One document's labels in a random order: `[BOS, l..., PAD...]`, `[l..., EOS, PAD...]`."""
    (token_ids, decoder_input), decoder_target = example
    count = tf.reduce_sum(tf.cast(decoder_target >= NUM_SPECIAL, tf.int32))
    keys = tf.random.stateless_uniform([count], seed=tf.stack([draw, tf.constant(0, tf.int64)]))
    labels = tf.gather(decoder_target[:count], tf.argsort(keys))
    decoder_target = tf.concat([labels, decoder_target[count:]], axis=0)
    decoder_input = tf.concat([decoder_input[:1], labels, decoder_input[count + 1 :]], axis=0)
    return (token_ids, decoder_input), decoder_target


def _trim_steps(inputs, decoder_target):
    token_ids, decoder_input = inputs
    steps = tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(decoder_input, 0), tf.int32), axis=1))
    return (token_ids, decoder_input[:, :steps]), decoder_target[:, :steps]


def make_multi_hot_dataset(
    token_ids: np.ndarray,
    label_sets: Sequence[Sequence[str]],
    vocab: LabelVocabulary,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of `(token_ids, targets)` for binary relevance.

    Yields:
        token ids `(batch, sequence_length)` and float32 0/1 targets
        `(batch, vocab.num_labels)`, columns in `vocab.labels` order.
    """
    targets = vocab.to_multi_hot(label_sets).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((token_ids, targets))
    if shuffle:
        dataset = dataset.shuffle(len(token_ids), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
