"""What each network trains on and how: its datasets, the targets of every step, its loss and callbacks.

The networks (`mlgen.nn.label_sequence`, `mlgen.nn.binary_relevance`) are layers and how
they run; the one training loop (`mlgen.nn.training`) asks `for_network` for their
targets, trains with their `make_dataset`, `loss` and `callbacks`, and attaches them to
the network as `training_targets`, whose `pairs` every training step trains on. For the
label-sequence network they are the label orders (the data's, shuffled per epoch, or the
model's own, found by a constrained search with inference's step function), the set
loss, scheduled sampling and the label head's loss.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from mlgen.config import ModelConfig
from mlgen.data.vocab import EOS_ID, NUM_SPECIAL, PAD_ID
from mlgen.nn import decoding, inference, preprocessing
from mlgen.nn.binary_relevance import BinaryRelevanceModel
from mlgen.nn.label_sequence import LabelSequenceModel


class Targets:
    """What `network` trains on and how (a `CNNTextModel`; its `training_targets` in training).

    Subclasses say `make_dataset` and `loss`; `callbacks` is none and `pairs` the data as
    it comes unless they say otherwise.
    """

    def __init__(self, network):
        self.network = network

    @property
    def config(self) -> ModelConfig:
        return self.network.model_config

    def make_dataset(
        self,
        documents,
        *,
        batch_size: int,
        shuffle: bool = False,
        buffer: int = 0,
        seed: int = 0,
        drop_remainder: bool = False,
    ):
        """What the network trains (`shuffle`) or is validated on, from `preprocessing.documents`
        (batching as `mlgen.nn.preprocessing.make_dataset`)."""
        raise NotImplementedError

    def loss(self) -> keras.losses.Loss:
        """The loss `model.compile` takes."""
        raise NotImplementedError

    def callbacks(self) -> list:
        """The Keras callbacks training needs beside the training loop's own."""
        return []

    def pairs(self, data):
        """The `(inputs, target)` a training or validation step trains on, from a batch of `make_dataset`."""
        return data


class BinaryRelevanceTargets(Targets):
    """cnn-br: each document's labels as one multi-hot row, binary cross-entropy per label."""

    def make_dataset(self, documents, *, shuffle=False, **batching):
        """`mlgen.nn.preprocessing.make_multi_hot_dataset` (keywords as `Targets.make_dataset`)."""
        return preprocessing.make_multi_hot_dataset(documents, len(self.network.labels), shuffle=shuffle, **batching)

    def loss(self):
        return keras.losses.BinaryCrossentropy(from_logits=True)


class SequenceTargets(Targets):
    """cnn-rnn (`LabelSequenceModel`): what the decoder is fed and should answer at every step.

    The network's `ModelConfig` says which:
        - `label_order`: `"shuffle"`: each document's labels in a fresh order every
          training epoch (`make_dataset`); `"model"`: the order in which the model itself
          ranks each document's gold labels, found before every step by a gradient-free
          greedy search allowed only those labels (the greedy form of order-free targets,
          PLA; `pairs`); any other order comes with the data;
        - `loss`: `"sequence"`: cross-entropy of the next label; `"set"`: each step's
          target is the set of gold labels not yet emitted (EOS once none is left), and
          `SetCrossEntropy` scores the probability of the whole set;
        - `scheduled_sampling`, `sampling_rate`: each decoder input is, with probability
          the network's `sampling_probability` (set per epoch by `ScheduledSampling`),
          the model's own previous prediction instead of the gold label (`decoder_input`);
        - `label_loss_weight`: the weight of the label head's binary cross-entropy (`add_losses`).
    """

    def make_dataset(self, documents, *, shuffle=False, **batching):
        """`mlgen.nn.preprocessing.make_dataset` (keywords as `Targets.make_dataset`), each
        document's labels in a fresh order per epoch in training with `label_order="shuffle"`."""
        shuffle_labels = shuffle and self.config.label_order == "shuffle"
        return preprocessing.make_dataset(documents, shuffle=shuffle, shuffle_labels=shuffle_labels, **batching)

    def loss(self):
        """Cross-entropy of the next label (PAD steps ignored), or `SetCrossEntropy` with `loss="set"`."""
        if self.config.loss == "set":
            return SetCrossEntropy()
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID)

    def callbacks(self) -> list:
        """`ScheduledSampling` with a `scheduled_sampling` schedule."""
        if self.config.scheduled_sampling == "none":
            return []
        return [ScheduledSampling(self.config.scheduled_sampling, self.config.sampling_rate)]

    def pairs(self, data):
        """The `((token_ids, decoder_input), target)` a step trains on, from the data's.

        With `label_order` other than `"model"` they are the data's. With `"model"`, the
        decoder input is BOS and each document's gold labels in the order a greedy search
        allowed only them ranks them (`decoding.ConstrainedSearch` over
        `inference.step_function`; no gradient; dropout off), and the target is that
        order, then EOS: int `(batch, steps)`. With `loss="set"` the target is instead
        float `(batch, steps, num_label_ids)`: the gold labels not yet fed at each step
        (EOS once none is left; zeros on PAD steps), any of which is a correct next label.
        """
        if self.config.label_order != "model":
            return data
        network = self.network
        (token_ids, decoder_input), _ = data
        steps = ops.shape(decoder_input)[1]
        gold = ops.max(ops.one_hot(decoder_input, network.num_label_ids), axis=1) > 0  # (batch, ids); BOS/PAD too
        step_fn, states = inference.step_function(network, token_ids)
        search = decoding.get("constrained", allowed=gold)
        order, _, _ = decoding.generate(
            step_fn, states, search, vocab_size=network.num_label_ids, max_labels=steps - 1
        )  # (batch, steps): the gold labels, most probable first, then EOS, then PAD
        order = ops.stop_gradient(order)
        fed = ops.where(order[:, :-1] >= NUM_SPECIAL, order[:, :-1], PAD_ID)
        decoder_input = ops.concatenate([decoder_input[:, :1], ops.cast(fed, decoder_input.dtype)], axis=1)
        if self.config.loss == "sequence":
            return (token_ids, decoder_input), order
        # Gold labels not fed before step t: the gold set minus the inputs up to t.
        fed_so_far = ops.cumsum(ops.one_hot(decoder_input, network.num_label_ids), axis=1) > 0  # (batch, steps, ids)
        is_label = ops.arange(network.num_label_ids) >= NUM_SPECIAL
        remaining = ops.logical_and(ops.logical_and(gold[:, None, :], ops.logical_not(fed_so_far)), is_label)
        eos = ops.one_hot(ops.full(ops.shape(order), EOS_ID), network.num_label_ids) > 0
        target = ops.where((order == EOS_ID)[:, :, None], eos, remaining)
        target = ops.logical_and(target, (order != PAD_ID)[:, :, None])
        return (token_ids, decoder_input), ops.cast(target, "float32")

    def add_losses(self, features, decoder_input) -> None:
        """Adds to the network's losses, in a training call, `label_loss_weight` times its label
        head's binary cross-entropy on the text feature vector `(batch, features_dim)`
        against the gold labels of `decoder_input` `(batch, steps)` (none without a head)."""
        network = self.network
        if network.label_head is None:
            return
        gold = ops.max(ops.one_hot(decoder_input - NUM_SPECIAL, len(network.labels)), axis=1)  # (batch, labels)
        loss = keras.losses.binary_crossentropy(gold, network.label_head(features), from_logits=True)
        network.add_loss(self.config.label_loss_weight * ops.mean(loss))

    def decoder_input(self, states, memory, decoder_input):
        """What the decoder is fed in a training call: the gold `decoder_input` `(batch, steps)`
        or, with scheduled sampling, each label after BOS replaced, with probability
        `sampling_probability`, by the model's prediction for that step (a first,
        gradient-free teacher-forced pass from the decoder's initial `states` and
        attention `memory`, as `LabelSequenceModel.initial_states`; Mihaylova & Martins,
        2019). A prediction is never PAD or BOS, so the step mask stays the gold one."""
        if self.config.scheduled_sampling == "none":
            return decoder_input
        network = self.network
        outputs, _ = network.decoder_outputs(states, memory, decoder_input, training=False)
        logits = network.head(outputs)  # (batch, steps, num_label_ids)
        never = ops.arange(network.num_label_ids) < EOS_ID  # PAD and BOS: inputs decoding never feeds
        logits = ops.where(never[None, None, :], -1e9, logits)
        predicted = ops.cast(ops.argmax(logits, axis=-1), decoder_input.dtype)  # (batch, steps)
        predicted = ops.stop_gradient(ops.concatenate([decoder_input[:, :1], predicted[:, :-1]], axis=1))
        draw = keras.random.uniform(ops.shape(decoder_input), seed=network.seed_generator)
        use_own = ops.logical_and(draw < network.sampling_probability, ops.not_equal(decoder_input, PAD_ID))
        return ops.where(use_own, predicted, decoder_input)


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


# Registered as `mlgen>SetCrossEntropy` (the name a saved model's compile config holds).
@keras.saving.register_keras_serializable(package="mlgen")
class SetCrossEntropy(keras.losses.Loss):
    """The set loss of order-free training: `-log sum_{y in targets} p(y)` per step,
    averaged over the steps that have a target (Set-RNN / OCD style: any gold label not
    yet emitted is a correct next label).

    Call arguments:
        y_true: 0/1 `(batch, steps, num_ids)`: the correct next ids of each step (all
            zeros on PAD steps).
        y_pred: logits `(batch, steps, num_ids)`.
    """

    def __init__(self, name="set_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        correct = ops.logsumexp(ops.where(y_true > 0, logits, decoding.NEG_INF), axis=-1)  # (batch, steps)
        valid = ops.cast(ops.any(y_true > 0, axis=-1), "float32")
        loss = (ops.logsumexp(logits, axis=-1) - correct) * valid
        return ops.sum(loss) / ops.maximum(ops.sum(valid), 1.0)


# Each network class and its targets.
TARGETS = {LabelSequenceModel: SequenceTargets, BinaryRelevanceModel: BinaryRelevanceTargets}


def for_network(network) -> Targets:
    """The targets `network` trains on (`TARGETS`: by its class)."""
    return TARGETS[type(network)](network)
