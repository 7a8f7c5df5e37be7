"""The one training loop: labelled data in, a fitted `Predictor` out.

Teacher forcing with Adam and gradient clipping through `model.fit`; after every epoch
the dev set is decoded (the model fed its own predictions) and scored, and early
stopping keeps the weights of the epoch with the best dev micro-F1.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import keras

from mlgen import __version__, metrics, pipeline
from mlgen.config import ModelConfig, TrainConfig, to_dict
from mlgen.data import LabelledData, train_dev_split
from mlgen.embeddings import load_word_vectors
from mlgen.model import LabelSequenceModel
from mlgen.predict import Predictor, decode_texts
from mlgen.vocab import PAD_ID, LabelVocabulary

MODEL_TYPE = "cnn-rnn"


class DevDecodingCallback(keras.callbacks.Callback):
    """Decodes the dev texts after each epoch and adds their scores to the logs.

    Adds `val_micro_f1`, `val_macro_f1`, `val_samples_f1` and `val_subset_accuracy`,
    so `EarlyStopping(monitor="val_micro_f1", mode="max")`, the progress bar,
    TensorBoard and the history all see them. Place it before those callbacks.
    """

    def __init__(self, texts, label_sets, labels, beam_size: int = 1):
        super().__init__()
        self.texts = list(texts)
        self.label_sets = label_sets
        self.labels = labels
        self.beam_size = beam_size
        self.scores: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        predictions = decode_texts(self.model, self.texts, beam_size=self.beam_size)
        scores = metrics.evaluate(self.label_sets, [p.labels for p in predictions], self.labels)
        self.scores.append(scores)
        if logs is not None:
            for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy"):
                logs[f"val_{key}"] = scores[key]


def fit(
    train: LabelledData,
    dev: LabelledData | None = None,
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    *,
    log_dir=None,
    verbose="auto",
) -> Predictor:
    """Trains a CNN-RNN model.

    Args:
        train: training texts and label sets; they alone build the text and label
            vocabularies.
        dev: held-out data for early stopping; when None, `train_config.dev_fraction`
            of `train` is split off with `train_config.seed`.
        model_config: network and decoding hyperparameters.
        train_config: optimisation hyperparameters.
        log_dir: where TensorBoard logs go (none when None).
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Returns:
        A `Predictor` with `history` (per-epoch logs) and `metrics` (dev scores of
        the kept epoch, timings).
    """
    started = time.perf_counter()
    keras.utils.set_random_seed(train_config.seed)
    if dev is None:
        train, dev = train_dev_split(train, train_config.dev_fraction, train_config.seed)
    vocab = LabelVocabulary.build(train.label_sets, order=model_config.label_order)
    longest = max(len(s) for s in train.label_sets)
    model_config = dataclasses.replace(
        model_config,
        max_labels=model_config.max_labels or longest,
        min_labels=model_config.min_labels if all(train.label_sets) else 0,
    )
    model = _build_model(vocab, train, model_config, train_config, verbose)
    train_ids = pipeline.vectorize(model.text_vectorizer, train.texts)
    report = vocab.unknown_report(dev)
    if report:
        _say(report, verbose)
    train_data = pipeline.make_dataset(
        train_ids, train.label_sets, vocab, batch_size=train_config.batch_size, shuffle=True, seed=train_config.seed
    )
    dev_data = pipeline.make_dataset(
        pipeline.vectorize(model.text_vectorizer, dev.texts),
        vocab.drop_unknown(dev.label_sets),
        vocab,
        batch_size=256,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(train_config.learning_rate, clipnorm=train_config.clipnorm or None),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
        jit_compile=False,  # XLA is slower on these CPUs (see TOOLCHAIN.md)
    )
    dev_callback = DevDecodingCallback(dev.texts, dev.label_sets, vocab.labels, beam_size=model_config.beam_size)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_micro_f1", mode="max", patience=train_config.patience, restore_best_weights=True, verbose=0
    )
    callbacks = [dev_callback, stopping]
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    fit_started = time.perf_counter()
    history = model.fit(
        train_data,
        validation_data=dev_data,
        epochs=train_config.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )
    fit_seconds = time.perf_counter() - fit_started

    config = {
        "mlgen_version": __version__,
        "model_type": MODEL_TYPE,
        "model": to_dict(model_config),
        "train": to_dict(train_config),
        "data": {"train": train.source, "dev": dev.source, "train_docs": len(train), "dev_docs": len(dev)},
    }
    predictor = Predictor(model, vocab, config)
    predictor.history = {key: [float(v) for v in values] for key, values in history.history.items()}
    best_epoch = stopping.best_epoch if dev_callback.scores else 0
    predictor.metrics = {
        "dev": dev_callback.scores[best_epoch] if dev_callback.scores else {},
        "best_epoch": best_epoch + 1,
        "epochs_run": len(dev_callback.scores),
        "fit_seconds": round(fit_seconds, 2),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return predictor


def _build_model(vocab, train, model_config, train_config, verbose) -> LabelSequenceModel:
    """The network with its text vocabulary adapted on `train` and, if asked, word vectors loaded."""
    model = LabelSequenceModel(
        vocab.labels,
        **{k: v for k, v in to_dict(model_config).items() if k not in ("beam_size", "label_order")},
    )
    pipeline.adapt_vectorizer(model.text_vectorizer, train.texts)
    model.build(((None, model_config.sequence_length), (None, None)))
    if train_config.embeddings:
        matrix, found = load_word_vectors(
            train_config.embeddings,
            model.text_vectorizer.get_vocabulary(),
            model_config.embedding_dim,
            num_rows=model_config.max_tokens,
            seed=train_config.seed,
        )
        model.encoder.embedding.embeddings.assign(matrix)
        _say(
            f"{train_config.embeddings}: vectors for {found} of {model.text_vectorizer.vocabulary_size()} tokens",
            verbose,
        )
    return model


def _say(message: str, verbose) -> None:
    if verbose:
        print(message, file=sys.stderr)
