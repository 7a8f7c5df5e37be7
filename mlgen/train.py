"""The one training loop for the Keras models: labelled data in, a fitted `Predictor` out.

`cnn-rnn` learns with teacher forcing (cross-entropy over the next label); `cnn-br`,
the same encoder with one sigmoid per label, with binary cross-entropy. Both use Adam
with gradient clipping through `model.fit`, keeping an exponential moving average of
the weights (`ema_momentum`, Polyak averaging); after every epoch the dev set is
predicted with the averaged weights the way users will predict it (decoded, or
thresholded after tuning the threshold) and scored, and early stopping keeps the
weights of the best dev micro-F1. With `ensemble="linear-br"` (the default) a linear-br
model is then fitted beside the network, and `calibrate` weighs the two on dev.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time

import keras
import numpy as np

from mlgen import __version__, metrics, pipeline
from mlgen.baselines import linear
from mlgen.baselines.cnn_br import BinaryRelevanceModel, CNNBRPredictor
from mlgen.config import CNN_BR_FIELDS, ENCODER_FIELDS, LINEAR_FIELDS, BaselineConfig, ModelConfig, TrainConfig, to_dict
from mlgen.data import LabelledData, train_dev_split
from mlgen.embeddings import load_word_vectors
from mlgen.errors import InputError, TrainingDiverged
from mlgen.model import LabelSequenceModel, SetCrossEntropy
from mlgen.predict import Predictor, SequencePredictor
from mlgen.vocab import PAD_ID, LabelVocabulary

MODEL_TYPES = ("cnn-rnn", "cnn-br")


class DevScoringCallback(keras.callbacks.Callback):
    """Predicts the dev texts after each epoch and adds their scores to the logs.

    Calls `predictor.calibrate(dev)` first when the predictor calibrates every epoch
    (binary relevance tunes its threshold there), then `predictor.predict`, so dev is
    scored as users will predict. Adds `val_micro_f1`, `val_macro_f1`, `val_samples_f1` and
    `val_subset_accuracy`, so `EarlyStopping(monitor="val_micro_f1", mode="max")`, the
    progress bar, TensorBoard and the history all see them. Place it before those.
    """

    def __init__(self, predictor: Predictor, dev: LabelledData):
        super().__init__()
        self.predictor = predictor
        self.dev = dev
        self.scores: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        if self.predictor.calibrate_each_epoch:
            self.predictor.calibrate(self.dev)
        predicted = self.predictor.predict(self.dev.texts)
        scores = metrics.evaluate(self.dev.label_sets, predicted, self.predictor.labels)
        self.scores.append(scores)
        if logs is not None:
            for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy"):
                logs[f"val_{key}"] = scores[key]


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


# Each schedule's k when `sampling_rate` is 0.
SAMPLING_RATES = {"linear": 40.0, "exponential": 0.97, "inverse-sigmoid": 5.0}


def sampling_probability(schedule: str, epoch: int, rate: float = 0.0) -> float:
    """The chance of feeding the decoder its own prediction in `epoch` (0-based).

    Bengio et al. (2015)'s decays of teacher forcing, as the probability of *not*
    teacher forcing: linear `min(1, epoch / k)`, exponential `1 - k ** epoch`,
    inverse-sigmoid `1 - k / (k + exp(epoch / k))`; `k = rate or SAMPLING_RATES[schedule]`.
    """
    if schedule == "none":
        return 0.0
    k = rate or SAMPLING_RATES[schedule]
    if schedule == "linear":
        return min(1.0, epoch / k)
    if schedule == "exponential":
        return 1.0 - k**epoch
    if schedule == "inverse-sigmoid":
        return 1.0 - k / (k + math.exp(epoch / k))
    raise ValueError(f"unknown scheduled sampling {schedule!r}")


class ScheduledSampling(keras.callbacks.Callback):
    """Sets the model's `sampling_probability` at the start of every epoch; logs it."""

    def __init__(self, schedule: str, rate: float = 0.0):
        super().__init__()
        self.schedule = schedule
        self.rate = rate

    def on_epoch_begin(self, epoch, logs=None):
        self.model.sampling_probability.assign(sampling_probability(self.schedule, epoch, self.rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sampling_probability"] = float(self.model.sampling_probability.numpy())


def fit(
    train: LabelledData,
    dev: LabelledData | None = None,
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    baseline_config: BaselineConfig = BaselineConfig(),
    *,
    model_type: str = "cnn-rnn",
    log_dir=None,
    verbose="auto",
) -> Predictor:
    """Trains a `cnn-rnn` (default) or `cnn-br` model.

    Args:
        train: training texts and label sets; they alone build the text and label
            vocabularies.
        dev: held-out data for early stopping (and cnn-br's threshold); when None,
            `train_config.dev_fraction` of `train` is split off with `train_config.seed`.
        model_config: network and decoding hyperparameters (cnn-br reads the
            encoder's and `ensemble`).
        train_config: optimisation hyperparameters.
        baseline_config: cnn-br's decision rule (`threshold`, `always_top`), and the
            linear-br ensemble's features and classifier.
        model_type: one of `MODEL_TYPES`.
        log_dir: where TensorBoard logs go (none when None).
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).

    Returns:
        A `SequencePredictor` or `CNNBRPredictor` with `history` (per-epoch logs) and
        `metrics` (dev scores of the kept epoch, timings).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    started = time.perf_counter()
    keras.utils.set_random_seed(train_config.seed)
    if dev is None:
        train, dev = train_dev_split(train, train_config.dev_fraction, train_config.seed)
    # "shuffle" and "model" reorder each document's labels as they train; ids still follow frequency.
    order = "frequency" if model_config.label_order in ("shuffle", "model") else model_config.label_order
    vocab = LabelVocabulary.build(train.label_sets, order=order)
    longest = max(len(s) for s in train.label_sets)
    min_labels = model_config.min_labels if all(train.label_sets) else 0  # documents may have no label
    if model_type == "cnn-rnn" and not model_config.max_labels and min_labels > longest:
        raise InputError(
            f"--min-labels {model_config.min_labels} is more than the labels a document can get: "
            f"the largest training label set has {longest} (--max-labels 0 takes that size)"
        )
    model_config = dataclasses.replace(
        model_config,
        sequence_length=model_config.sequence_length
        or pipeline.choose_sequence_length(train.texts, minimum=max(model_config.filter_sizes)),
        max_labels=model_config.max_labels or longest,
        min_labels=min_labels,
    )
    report = vocab.unknown_report(dev)
    if report:
        _say(report, verbose)

    config = {"mlgen_version": __version__, "model_type": model_type}
    if model_type == "cnn-rnn":
        model, train_ids = _build_model(LabelSequenceModel, vocab, train, model_config, train_config, verbose)
        config["model"] = to_dict(model_config)
        make_dataset = functools.partial(pipeline.make_dataset, shuffle_labels=model_config.label_order == "shuffle")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)
        if model_config.loss == "set":
            loss = SetCrossEntropy()
    else:
        model, train_ids = _build_model(BinaryRelevanceModel, vocab, train, model_config, train_config, verbose)
        config["model"] = {k: v for k, v in to_dict(model_config).items() if k in CNN_BR_FIELDS}
        config["baseline"] = {k: v for k, v in to_dict(baseline_config).items() if k not in LINEAR_FIELDS}
        make_dataset = pipeline.make_multi_hot_dataset
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
    if model_config.ensemble == "linear-br":
        config.setdefault("baseline", {}).update({k: getattr(baseline_config, k) for k in LINEAR_FIELDS})
    config["train"] = to_dict(train_config)
    config["data"] = {"train": train.source, "dev": dev.source, "train_docs": len(train), "dev_docs": len(dev)}
    predictor = (SequencePredictor if model_type == "cnn-rnn" else CNNBRPredictor)(model, vocab, config)

    train_data = make_dataset(
        train_ids,
        train.label_sets,
        vocab,
        batch_size=train_config.batch_size,
        shuffle=True,
        seed=train_config.seed,
    )
    dev_data = (pipeline.make_dataset if model_type == "cnn-rnn" else make_dataset)(
        pipeline.vectorize(model.text_vectorizer, dev.texts), vocab.drop_unknown(dev.label_sets), vocab, batch_size=256
    )
    model.compile(
        optimizer=keras.optimizers.Adam(
            train_config.learning_rate,
            clipnorm=train_config.clipnorm or None,
            use_ema=train_config.ema_momentum > 0,
            ema_momentum=train_config.ema_momentum,
        ),
        loss=loss,
        jit_compile=False,  # XLA is slower on these CPUs (see TOOLCHAIN.md)
    )
    dev_callback = DevScoringCallback(predictor, dev)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_micro_f1", mode="max", patience=train_config.patience, restore_best_weights=True, verbose=0
    )
    callbacks = [StopOnNonFiniteLoss(train_config.learning_rate), TrainingSpeed(len(train)), dev_callback, stopping]
    if train_config.ema_momentum:
        # The averaged weights are in the model from each epoch's end to the next epoch's
        # start: dev is scored with them and early stopping keeps them.
        callbacks.insert(2, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    if model_type == "cnn-rnn" and model_config.scheduled_sampling != "none":
        callbacks.insert(0, ScheduledSampling(model_config.scheduled_sampling, model_config.sampling_rate))
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
    _check_finite(model, train_config)
    if model_config.ensemble == "linear-br":  # joins only now: epochs are scored on the network alone
        predictor.linear = linear.fit(train, dev, baseline_config, train_config, vocab=vocab, verbose=0)
    # The best epoch's weights are back: tune what decoding adds (cnn-rnn) or the threshold (cnn-br),
    # and the ensemble's weights.
    predictor.calibrate(dev)
    dev_scores = metrics.evaluate(dev.label_sets, predictor.predict(dev.texts), vocab.labels)

    predictor.history = {key: [float(v) for v in values] for key, values in history.history.items()}
    best_epoch = stopping.best_epoch if dev_callback.scores else 0
    predictor.metrics = {
        "dev": dev_scores,
        "best_epoch": best_epoch + 1,
        "epochs_run": len(dev_callback.scores),
        "fit_seconds": round(fit_seconds, 2),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return predictor


def _build_model(cls, vocab, train, model_config, train_config, verbose):
    """The network with its text vocabulary from `train` and, if asked, word vectors
    loaded; and `train`'s token ids."""
    if cls is LabelSequenceModel:
        decoding_only = ("beam_size", "decision", "label_order", "tune_eos_bias", "sampling_rate", "ensemble")
        options = {k: v for k, v in to_dict(model_config).items() if k not in decoding_only}
        options["targets"] = "model" if model_config.label_order == "model" else "given"
        input_shape = ((None, model_config.sequence_length), (None, None))
    else:
        options = {k: v for k, v in to_dict(model_config).items() if k in ENCODER_FIELDS}
        input_shape = (None, model_config.sequence_length)
    model = cls(vocab.labels, **options)
    pipeline.adapt_vectorizer(model.text_vectorizer, train.texts)
    model.build(input_shape)
    train_ids = pipeline.vectorize(model.text_vectorizer, train.texts)
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
    return model, train_ids


def _check_finite(model, train_config: TrainConfig) -> None:
    """Raises `TrainingDiverged` if a trained weight is NaN or infinite."""
    bad = [w.path for w in model.weights if not np.isfinite(keras.ops.convert_to_numpy(w.value)).all()]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {len(bad)} weights are not finite (first: {bad[0]}); nothing was saved; "
            f"try a lower --learning-rate (now {train_config.learning_rate:g})"
        )


def _say(message: str, verbose) -> None:
    if verbose:
        print(message, file=sys.stderr)
