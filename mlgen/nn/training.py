"""The one training loop for the networks, and the Keras callbacks it runs.

`cnn-rnn` learns with teacher forcing (cross-entropy over the next label); `cnn-br`,
the same encoder with one sigmoid per label, with binary cross-entropy. Both use Adam
with gradient clipping through `model.fit`, keeping an exponential moving average of
the weights (`ema_momentum`, Polyak averaging); after every epoch the dev set is
predicted with the averaged weights the way users will predict it (decoded, or
thresholded after tuning the threshold) and scored, and early stopping keeps the
weights of the best dev micro-F1. What each network trains on (its datasets, step
targets, loss and callbacks) lives in `mlgen.nn.targets`; what each model type adds (its
network; the ensemble and calibration after training) is its predictor's
(`mlgen.predictors.neural`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time

import keras
import numpy as np

from mlgen.config import ModelConfig, TrainConfig
from mlgen.data import LabelledData
from mlgen.data.embeddings import load_word_vectors
from mlgen.data.stream import LabelledStream
from mlgen.data.summary import DataSummary
from mlgen.errors import InputError, TrainingDiverged, option
from mlgen.eval import metrics
from mlgen.nn import distribute, preprocessing, targets


class DevScoringCallback(keras.callbacks.Callback):
    """Predicts the dev texts after each epoch and adds their scores to the logs.

    `predictor` is anything with `predict(texts)`, `labels`, `calibrate(dev)` and
    `calibrate_each_epoch` (a `mlgen.predictors` predictor around the network).

    Calls `predictor.calibrate(dev)` first when the predictor calibrates every epoch
    (binary relevance tunes its threshold there), then `predictor.predict`, so dev is
    scored as users will predict. Adds `val_micro_f1`, `val_macro_f1`, `val_samples_f1` and
    `val_subset_accuracy`, so `EarlyStopping(monitor="val_micro_f1", mode="max")`, the
    progress bar, TensorBoard and the history all see them. Place it before those.

    On several workers the chief alone scores dev, and sends the other workers its
    scores (`distribute.from_chief`), so that every one stops at the same epoch and keeps
    the same weights.
    """

    KEYS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy")

    def __init__(self, predictor, dev: LabelledData):
        super().__init__()
        self.predictor = predictor
        self.dev = dev
        self.scores: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        scores = self._score() if distribute.is_chief() else dict.fromkeys(self.KEYS, 0.0)
        if distribute.strategy() is not None:
            scores.update(zip(self.KEYS, distribute.from_chief([scores[key] for key in self.KEYS])))
        self.scores.append(scores)
        if logs is not None:
            for key in self.KEYS:
                logs[f"val_{key}"] = scores[key]

    def _score(self) -> dict:
        if self.predictor.calibrate_each_epoch:
            self.predictor.calibrate(self.dev)
        predicted = self.predictor.predict(self.dev.texts)
        return metrics.evaluate(self.dev.label_sets, predicted, self.predictor.labels)


class TrainingSpeed(keras.callbacks.Callback):
    """Adds `train_docs_per_s` to each epoch's logs: documents over the time from the
    epoch's start to its last training batch (dev scoring and validation excluded)."""

    def __init__(self, num_docs: int):
        super().__init__()
        self.num_docs = num_docs
        self._started = self._last_batch = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = self._last_batch = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_docs_per_s"] = self.num_docs / max(self._last_batch - self._started, 1e-9)


class StopOnNonFiniteLoss(keras.callbacks.TerminateOnNaN):
    """Keras's `TerminateOnNaN`, made an error: raises `TrainingDiverged` at the first
    batch whose loss is NaN or infinite, so that nothing diverged is ever saved."""

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate = learning_rate
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"training diverged: the loss became {float(loss)} in epoch {self._epoch + 1}, batch {batch + 1}; "
                f"nothing was saved; try a lower --learning-rate (now {self.learning_rate:g}) or --clipnorm"
            )


def resolve_config(model_config: ModelConfig, summary: DataSummary, check_min_labels: bool = True) -> ModelConfig:
    """`model_config` with what depends on the training data (`summary`) filled in:
    `sequence_length` 0 -> the 99th percentile of the texts' word counts
    (`choose_sequence_length`), `max_labels` 0 -> the largest training label set,
    `min_labels` 0 when a training document has no label.

    Raises:
        InputError: with `check_min_labels`, when `min_labels` is more than any document can get.
    """
    longest = summary.longest
    min_labels = model_config.min_labels if summary.all_labelled else 0  # documents may have no label
    if check_min_labels and not model_config.max_labels and min_labels > longest:
        raise InputError(
            f"{option('min_labels', model_config.min_labels)} is more than the labels a document can get: "
            f"the largest training label set has {longest} ({option('max_labels', 0)} takes that size)"
        )
    return dataclasses.replace(
        model_config,
        sequence_length=model_config.sequence_length
        or preprocessing.choose_sequence_length(summary, minimum=max(model_config.filter_sizes)),
        max_labels=model_config.max_labels or longest,
        min_labels=min_labels,
    )


def build_network(network_class, vocab, texts, model_config: ModelConfig, train_config: TrainConfig, verbose=0):
    """A `network_class` (`LabelSequenceModel` or `BinaryRelevanceModel`) for `vocab`'s labels,
    its text vocabulary adapted to `texts` (the training texts, or a streamed run's sample)
    and, with `train_config.embeddings`, its token embedding started from those word vectors."""
    model = network_class(vocab.labels, model_config)
    preprocessing.adapt_vectorizer(model.text_vectorizer, texts)
    model.build(model.input_shapes())
    if train_config.embeddings:
        matrix, found = load_word_vectors(
            train_config.embeddings,
            model.text_vectorizer.get_vocabulary(),
            model_config.embedding_dim,
            num_rows=model_config.max_tokens,
            seed=train_config.seed,
        )
        model.encoder.embedding.embeddings.assign(matrix)
        say(
            f"{train_config.embeddings}: vectors for {found} of {model.text_vectorizer.vocabulary_size()} tokens",
            verbose,
        )
    return model


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`): a run's weights and batches."""
    keras.utils.set_random_seed(seed)


# Documents per batch when the dev loss is computed (`model.fit`'s validation).
DEV_BATCH = 256


def train_network(
    model,
    predictor,
    train: LabelledData | LabelledStream,
    dev: LabelledData,
    vocab,
    train_config: TrainConfig,
    *,
    log_dir=None,
    verbose=0,
) -> dict:
    """The one training loop: `model.fit` with Adam, gradient clipping and weight averaging,
    dev scored after every epoch as `predictor` predicts it, early stopping on dev micro-F1.

    What the network trains on and how is its targets' (`mlgen.nn.targets.for_network`:
    `make_dataset`, `loss`, `callbacks`), attached to it as `training_targets`, whose
    `pairs` its training and validation steps train on.

    Args:
        model: the built network (`build_network`); compiled here.
        predictor: what scores dev each epoch (`DevScoringCallback`): anything with
            `predict(texts)`, `labels`, `calibrate(dev)` and `calibrate_each_epoch`.
        train: the training documents, in memory or a `LabelledStream` (written once, vectorized,
            to TFRecord files in a temporary folder that every epoch reads and that goes at the end).
        dev: the dev documents.
        vocab: the label vocabulary.
        train_config: optimisation hyperparameters.
        log_dir: where TensorBoard logs go (none when None).
        verbose: Keras verbosity.

    Returns:
        `{"history": per-epoch logs, "best_epoch": 1-based, "epochs_run", "fit_seconds"}`;
        the model holds the kept epoch's (averaged) weights.

    Raises:
        TrainingDiverged: when the loss or a weight stops being finite.
        InputError: on several workers, when a batch cannot give each a document
            (`preprocessing.training_batches`); from a streamed `train`, when a file changed
            since it was scanned, or its records do not fit in TMPDIR (`preprocessing.write_records`).
    """
    known = dataclasses.replace(dev, label_sets=vocab.drop_unknown(dev.label_sets))
    task = targets.for_network(model)
    model.training_targets = task
    # On several workers every batch is split among them, and none may get an empty share
    # (`preprocessing.training_batches`): the training batches are all full, and the dev
    # batches (for the dev loss; dev is scored by the chief alone) sized to split.
    distribute_strategy = distribute.strategy()
    replicas = distribute_strategy.num_replicas_in_sync if distribute_strategy is not None else 1
    batch_size, drop_remainder = preprocessing.training_batches(len(train), train_config.batch_size, replicas)
    dev_batch = preprocessing.validation_batch_size(len(known), DEV_BATCH, replicas)
    dev_documents = preprocessing.documents(model.text_vectorizer, known, vocab)
    dev_data = task.make_dataset(dev_documents, batch_size=dev_batch) if dev_batch is not None else None
    model.compile(
        optimizer=keras.optimizers.Adam(
            train_config.learning_rate,
            clipnorm=train_config.clipnorm or None,
            use_ema=train_config.ema_momentum > 0,
            ema_momentum=train_config.ema_momentum,
        ),
        loss=task.loss(),
        jit_compile=False,  # XLA trained and decoded about 2x slower on the 2-core x86-64 CPUs measured
    )
    dev_callback = DevScoringCallback(predictor, dev)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_micro_f1", mode="max", patience=train_config.patience, restore_best_weights=True, verbose=0
    )
    all_callbacks = [*task.callbacks(), StopOnNonFiniteLoss(train_config.learning_rate)]
    all_callbacks.append(TrainingSpeed(len(train) - len(train) % batch_size if drop_remainder else len(train)))
    if train_config.ema_momentum:
        # The averaged weights are in the model from each epoch's end to the next epoch's
        # start: dev is scored with them and early stopping keeps them.
        all_callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    all_callbacks += [dev_callback, stopping]
    if log_dir is not None:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir)))
    started = time.perf_counter()
    # A streamed training set is written, vectorized, to records in a folder of its own for the run
    # (`mlgen-records-PID-*` in TMPDIR, removed however training ends, or by the next streamed run).
    streamed = isinstance(train, LabelledStream)
    with preprocessing.records_folder() if streamed else contextlib.nullcontext() as folder:
        documents = preprocessing.documents(model.text_vectorizer, train, vocab, folder, seed=train_config.seed)
        train_data = task.make_dataset(
            documents,
            batch_size=batch_size,
            shuffle=True,
            buffer=preprocessing.shuffle_buffer(train),
            seed=train_config.seed,
            drop_remainder=drop_remainder,
        )
        history = model.fit(
            train_data,
            validation_data=dev_data,
            epochs=train_config.epochs,
            callbacks=all_callbacks,
            verbose=verbose,
            shuffle=False,
        )
    fit_seconds = time.perf_counter() - started
    _check_finite(model, train_config)
    return {
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "best_epoch": (stopping.best_epoch if dev_callback.scores else 0) + 1,
        "epochs_run": len(dev_callback.scores),
        "fit_seconds": round(fit_seconds, 2),
    }


def _check_finite(model, train_config: TrainConfig) -> None:
    """Raises `TrainingDiverged` if a trained weight is NaN or infinite."""
    bad = [w.path for w in model.weights if not np.isfinite(w.numpy()).all()]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {len(bad)} weights are not finite (first: {bad[0]}); nothing was saved; "
            f"try a lower --learning-rate (now {train_config.learning_rate:g})"
        )


def say(message: str, verbose) -> None:
    """Prints `message` to stderr unless `verbose` is 0."""
    if verbose:
        print(message, file=sys.stderr)
