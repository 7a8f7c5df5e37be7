"""The CNN-RNN label-sequence model (Chen et al., IJCNN 2017).

A CNN reads the document into a text feature vector; an RNN decoder, conditioned on
that vector at every step, writes the label set one label at a time. Training uses
teacher forcing (`call`); inference feeds the decoder its own predictions through
`mlgen.decoding` (`generate`).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from mlgen import decoding
from mlgen.layers.attention import LuongAttention
from mlgen.layers.decoder_cell import LabelDecoderCell
from mlgen.layers.encoder import CNNTextEncoder
from mlgen.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, PAD_ID, LabelVocabulary

# Global feedback's softmax temperature over the previous step's logits (SGM's released code).
FEEDBACK_TEMPERATURE = 0.1


class CNNTextModel(keras.Model):
    """What cnn-rnn and cnn-br share: label names, a `TextVectorization` layer and the
    `CNNTextEncoder`, with their config. Subclasses add their heads.

    Args:
        labels: label names.
        max_tokens: text vocabulary size of the `TextVectorization` layer.
        sequence_length: tokens per document.
        embedding_dim, filter_sizes, num_filters, dropout, word_dropout: see
            `CNNTextEncoder`.
    """

    def __init__(
        self,
        labels,
        max_tokens: int = 20000,
        sequence_length: int = 200,
        embedding_dim: int = 50,
        filter_sizes=(3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.3,
        word_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.labels = list(labels)
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.filter_sizes = tuple(filter_sizes)
        self.num_filters = num_filters
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.text_vectorizer = keras.layers.TextVectorization(
            max_tokens=max_tokens, output_sequence_length=sequence_length, name="text_vectorizer"
        )
        self.encoder = CNNTextEncoder(
            vocab_size=max_tokens,
            embedding_dim=embedding_dim,
            filter_sizes=filter_sizes,
            num_filters=num_filters,
            dropout=dropout,
            word_dropout=word_dropout,
            name="encoder",
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            labels=self.labels,
            max_tokens=self.max_tokens,
            sequence_length=self.sequence_length,
            embedding_dim=self.embedding_dim,
            filter_sizes=list(self.filter_sizes),
            num_filters=self.num_filters,
            dropout=self.dropout,
            word_dropout=self.word_dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="mlgen")
class LabelSequenceModel(CNNTextModel):
    """Text in, label sequence out. Holds its text vectorizer and label names.

    Args:
        labels: label names in id order (`LabelVocabulary.labels`); ids 0-2 are
            PAD, BOS, EOS.
        max_tokens: text vocabulary size of the `TextVectorization` layer.
        sequence_length: tokens per document.
        embedding_dim, filter_sizes, num_filters, dropout, word_dropout: see
            `CNNTextEncoder`.
        cell, decoder_units, decoder_layers, context: see `LabelDecoderCell`.
        attention: `"none"`, or a `LuongAttention` score (`"dot"`, `"general"`,
            `"concat"`) over the encoder's per-position features.
        scheduled_sampling: `"none"`, `"linear"`, `"exponential"` or
            `"inverse-sigmoid"`: in training, each decoder input is, with probability
            `sampling_probability` (set per epoch by `ScheduledSampling`), the
            model's own previous prediction instead of the gold label.
        label_embedding_dim: size of the previous-label embedding.
        max_labels: most labels a document gets when decoding.
        min_labels: fewest labels a document gets when decoding.
        label_loss_weight: if > 0, a `label_head` (one sigmoid per label on the text
            feature vector) trains beside the decoder with this weight on its binary
            cross-entropy, and decoding adds `label_prior_weight` times its
            log-sigmoid to every step's label logits (a product of the two models).
        targets: `"given"`: train on the label order of the data; `"model"`: on the
            order in which the model itself ranks each document's gold labels, found
            before every training step by a gradient-free greedy search allowed only
            those labels (the greedy form of order-free targets, PLA).
        feedback: how the previous label enters a step. `"hard"`: its embedding.
            `"global"` (SGM's global embedding, Yang et al. 2018): a learned gate `H`
            between that embedding `e` and the probability-weighted mean `ē` of all
            label embeddings under the previous step's distribution (softmax of its
            logits at temperature `FEEDBACK_TEMPERATURE`): `(1 - H) * e + H * ē`. Decoding
            computes it step by step; teacher forcing takes `ē` from a first,
            gradient-free pass over the gold inputs (the previous steps' distributions
            as the model gives them).
        loss: `"sequence"`: cross-entropy of the next label; `"set"`: each step's
            target is the set of gold labels not yet emitted (EOS once none is left),
            and `SetCrossEntropy` scores the probability of the whole set (needs
            `targets="model"`, which gives the next input).

    Call arguments:
        inputs: `(token_ids, decoder_input)`: int `(batch, sequence_length)` and
            int `(batch, steps)` = BOS + gold labels, PAD after.

    Returns:
        Logits `(batch, steps, len(labels) + 3)` for the next label at every step.
    """

    def __init__(
        self,
        labels,
        max_tokens: int = 20000,
        sequence_length: int = 200,
        embedding_dim: int = 50,
        filter_sizes=(3, 4, 5),
        num_filters: int = 100,
        dropout: float = 0.3,
        word_dropout: float = 0.0,
        cell: str = "gru",
        decoder_units: int = 256,
        decoder_layers: int = 1,
        context: str = "concat",
        attention: str = "none",
        scheduled_sampling: str = "none",
        label_embedding_dim: int = 64,
        max_labels: int = 10,
        min_labels: int = 1,
        label_loss_weight: float = 0.0,
        targets: str = "given",
        loss: str = "sequence",
        feedback: str = "hard",
        **kwargs,
    ):
        super().__init__(
            labels,
            max_tokens,
            sequence_length,
            embedding_dim,
            filter_sizes,
            num_filters,
            dropout,
            word_dropout,
            **kwargs,
        )
        self.cell_type = cell
        self.decoder_units = decoder_units
        self.decoder_layers = decoder_layers
        self.context = context
        self.attention_score = attention
        self.scheduled_sampling = scheduled_sampling
        self.label_embedding_dim = label_embedding_dim
        self.max_labels = max_labels
        self.min_labels = min_labels
        self.num_label_ids = len(self.labels) + NUM_SPECIAL
        self.label_loss_weight = label_loss_weight
        if targets not in ("given", "model") or loss not in ("sequence", "set") or (loss, targets) == ("set", "given"):
            raise ValueError(f"unsupported targets={targets!r} with loss={loss!r}")
        self.targets = targets
        self.loss_type = loss
        if feedback not in ("hard", "global"):
            raise ValueError(f"unknown feedback {feedback!r}")
        self.feedback = feedback

        self.label_names = LabelVocabulary(self.labels).lookup_layer(invert=True)  # ids -> names, saved inside
        self.label_embedding = keras.layers.Embedding(self.num_label_ids, label_embedding_dim, name="label_embedding")
        self.cell = LabelDecoderCell(
            decoder_units,
            self.encoder.output_dim,
            cell=cell,
            layers=decoder_layers,
            context=context,
            name="decoder_cell",
        )
        self.decoder = keras.layers.RNN(self.cell, return_sequences=True, name="decoder")
        self.attention = None if attention == "none" else LuongAttention(decoder_units, attention, name="attention")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(self.num_label_ids, name="head")
        self.feedback_gate = None
        if feedback == "global":  # H = sigmoid(W1 e + W2 ē + b)
            self.feedback_gate = keras.layers.Dense(label_embedding_dim, activation="sigmoid", name="feedback_gate")
        # Multi-task: one sigmoid per label on the text feature vector (a binary-relevance head).
        self.label_head = keras.layers.Dense(len(self.labels), name="label_head") if label_loss_weight else None
        # Only models that sample draw from the global seed (a default model's weights stay as they were).
        self.seed_generator = keras.random.SeedGenerator() if scheduled_sampling != "none" else None
        self._compiled_functions = {}

    def build(self, input_shape):
        token_shape, decoder_shape = input_shape
        self.encoder.build(token_shape)
        self.label_embedding.build(decoder_shape)
        self.cell.build((None, self.label_embedding_dim))
        self.decoder.build((None, None, self.label_embedding_dim))
        if self.attention is not None:
            self.attention.build((None, None, self.decoder_units), (None, None, self.encoder.output_dim))
        self.head.build((None, self.decoder_units))
        if self.feedback_gate is not None:
            self.feedback_gate.build((None, 2 * self.label_embedding_dim))
        if self.label_head is not None:
            self.label_head.build((None, self.encoder.output_dim))
        # Added to the EOS logit when decoding (not in training): tuned on dev after
        # training to trade precision for recall (`SequencePredictor.calibrate`).
        self.eos_bias = self.add_weight(name="eos_bias", shape=(), initializer="zeros", trainable=False)
        # The chance that a training step's decoder input is the model's own previous
        # prediction (scheduled sampling; set per epoch by `ScheduledSampling`).
        self.sampling_probability = self.add_weight(
            name="sampling_probability", shape=(), initializer="zeros", trainable=False
        )
        if self.label_head is not None:
            # Decoding adds this times the label head's log-sigmoid to every step's label
            # logits; tuned on dev after training (`SequencePredictor.calibrate`).
            self.label_prior_weight = self.add_weight(
                name="label_prior_weight", shape=(), initializer="ones", trainable=False
            )
        self.built = True

    def read(self, token_ids, training=None):
        """One pass of the encoder: the text feature vector and, with attention, the memory.

        Returns:
            `(features, memory)`: features `(batch, features_dim)`; `memory` is
            `(position features (batch, length, features_dim), mask (batch, length))`,
            or None without attention.
        """
        if self.attention is None:
            return self.encoder(token_ids, training=training), None
        return self.encoder(token_ids, training=training, return_positions=True)

    def encode(self, token_ids, training=None):
        """The decoder's initial states and, with attention, the memory it reads.

        Returns:
            `(states, memory)`: `LabelDecoderCell` states and `memory` as in `read`.
        """
        features, memory = self.read(token_ids, training=training)
        return self.cell.initial_state(features), memory

    def decode(self, states, memory, decoder_input, training=None):
        """Decoder outputs for whole label sequences (teacher forcing).

        Returns:
            `(outputs, weights)`: `(batch, steps, decoder_units)` and the attention
            weights `(batch, steps, length)` (None without attention).
        """
        embedded = self.label_embedding(decoder_input)  # (batch, steps, label_embedding_dim)
        # The mask is passed explicitly: PAD steps neither update the state nor reach the loss.
        mask = ops.not_equal(decoder_input, PAD_ID)
        if self.feedback == "global":
            first, _ = self._run_decoder(states, memory, embedded, mask, training=False)
            probs = ops.stop_gradient(self._feedback_probs(self.head(first)))  # (batch, steps, ids)
            start = ops.one_hot(ops.full(ops.shape(decoder_input)[:1], BOS_ID, dtype="int32"), self.num_label_ids)[
                :, None, :
            ]
            embedded = self._feedback_input(embedded, ops.concatenate([start, probs[:, :-1]], axis=1))
        return self._run_decoder(states, memory, embedded, mask, training)

    def _run_decoder(self, states, memory, embedded, mask, training):
        outputs = self.decoder(embedded, initial_state=states, mask=mask, training=training)
        if self.attention is None:
            return outputs, None
        return self.attention(outputs, *memory)

    def _feedback_probs(self, logits):
        """The previous step's distribution that global feedback averages the label embeddings by."""
        return ops.softmax(ops.cast(logits, "float32") / FEEDBACK_TEMPERATURE, axis=-1)

    def _feedback_input(self, embedded, previous_probs):
        """Global feedback: `(1 - H) * e + H * ē`, `ē = previous_probs @ label embeddings`.

        Args:
            embedded: the previous labels' embeddings `e`, `(..., label_embedding_dim)`.
            previous_probs: the previous steps' distributions `(..., num_label_ids)`.
        """
        mean = ops.matmul(previous_probs, self.label_embedding.embeddings)  # (..., label_embedding_dim)
        gate = self.feedback_gate(ops.concatenate([embedded, mean], axis=-1))
        return (1.0 - gate) * embedded + gate * mean

    def call(self, inputs, training=None):
        token_ids, decoder_input = inputs
        features, memory = self.read(token_ids, training=training)
        states = self.cell.initial_state(features)
        if training and self.label_head is not None:
            gold = ops.max(ops.one_hot(decoder_input - NUM_SPECIAL, len(self.labels)), axis=1)  # (batch, labels)
            loss = keras.losses.binary_crossentropy(gold, self.label_head(features), from_logits=True)
            self.add_loss(self.label_loss_weight * ops.mean(loss))
        if training and self.scheduled_sampling != "none":
            decoder_input = self._sampled_input(states, memory, decoder_input)
        outputs, _ = self.decode(states, memory, decoder_input, training=training)
        return self.head(self.output_dropout(outputs, training=training))  # (batch, steps, num_label_ids)

    def _sampled_input(self, states, memory, decoder_input):
        """Gold decoder input with each label after BOS replaced, with probability
        `sampling_probability`, by the model's prediction for that step (a first,
        gradient-free teacher-forced pass; Mihaylova & Martins, 2019). A prediction is
        never PAD or BOS, so the step mask stays the gold one."""
        outputs, _ = self.decode(states, memory, decoder_input, training=False)
        logits = self.head(outputs)  # (batch, steps, num_label_ids)
        never = ops.arange(self.num_label_ids) < EOS_ID  # PAD and BOS: inputs decoding never feeds
        logits = ops.where(never[None, None, :], -1e9, logits)
        predicted = ops.cast(ops.argmax(logits, axis=-1), decoder_input.dtype)  # (batch, steps)
        predicted = ops.stop_gradient(ops.concatenate([decoder_input[:, :1], predicted[:, :-1]], axis=1))
        draw = keras.random.uniform(ops.shape(decoder_input), seed=self.seed_generator)
        use_own = ops.logical_and(draw < self.sampling_probability, ops.not_equal(decoder_input, PAD_ID))
        return ops.where(use_own, predicted, decoder_input)

    def train_step(self, data):
        return super().train_step(self.training_pairs(data))

    def test_step(self, data):
        return super().test_step(self.training_pairs(data))

    def training_pairs(self, data):
        """The `((token_ids, decoder_input), target)` a step trains on, from the data's.

        With `targets="given"` they are the data's. With `"model"`, the decoder input is
        BOS and each document's gold labels in the order a greedy search allowed only
        them ranks them (no gradient; dropout off), and the target is that order, then
        EOS: int `(batch, steps)`. With `loss="set"` the target is instead float
        `(batch, steps, num_label_ids)`: the gold labels not yet fed at each step (EOS
        once none is left; zeros on PAD steps), any of which is a correct next label.
        """
        if self.targets == "given":
            return data
        (token_ids, decoder_input), _ = data
        steps = ops.shape(decoder_input)[1]
        gold = ops.max(ops.one_hot(decoder_input, self.num_label_ids), axis=1) > 0  # (batch, ids); BOS/PAD too
        step_fn, states = self.step_function(token_ids)
        order, _, _ = decoding.greedy_search(
            step_fn, states, vocab_size=self.num_label_ids, max_labels=steps - 1, allowed=gold
        )  # (batch, steps): the gold labels, most probable first, then EOS, then PAD
        order = ops.stop_gradient(order)
        fed = ops.where(order[:, :-1] >= NUM_SPECIAL, order[:, :-1], PAD_ID)
        decoder_input = ops.concatenate([decoder_input[:, :1], ops.cast(fed, decoder_input.dtype)], axis=1)
        if self.loss_type == "sequence":
            return (token_ids, decoder_input), order
        # Gold labels not fed before step t: the gold set minus the inputs up to t.
        fed_so_far = ops.cumsum(ops.one_hot(decoder_input, self.num_label_ids), axis=1) > 0  # (batch, steps, ids)
        is_label = ops.arange(self.num_label_ids) >= NUM_SPECIAL
        remaining = ops.logical_and(ops.logical_and(gold[:, None, :], ops.logical_not(fed_so_far)), is_label)
        eos = ops.one_hot(ops.full(ops.shape(order), EOS_ID), self.num_label_ids) > 0
        target = ops.where((order == EOS_ID)[:, :, None], eos, remaining)
        target = ops.logical_and(target, (order != PAD_ID)[:, :, None])
        return (token_ids, decoder_input), ops.cast(target, "float32")

    def step_function(self, token_ids, beam_size: int = 1, prior=None):
        """`(step_fn, initial_states)` for `mlgen.decoding` over token ids `(batch, length)`.

        `prior`, float `(batch, num_labels)` or None, is added to each document's label
        logits at every step (the linear-br ensemble's weighted margins).

        `step_fn(prev_ids (rows,), states) -> (logits (rows, num_label_ids), states)`,
        rows = batch * beam_size (beam search repeats each document's states). The
        cell's `decoding_step` reuses what depends on the text alone; the attention
        memory stays per document: the `beam_size` hypotheses of a document attend to
        it together, as `beam_size` query steps.
        """
        context, memory = self.read(token_ids, training=False)
        states = self.cell.decoding_state(context)
        if self.feedback == "global":  # the state carries the previous step's distribution
            states = (states, ops.one_hot(ops.full(ops.shape(context)[:1], BOS_ID, dtype="int32"), self.num_label_ids))
        # Added to every step's logits: the EOS bias and, with a label head, its weighted log-sigmoid.
        added = ops.one_hot(EOS_ID, self.num_label_ids) * self.eos_bias  # (num_label_ids,)
        if self.label_head is not None:
            head = ops.log_sigmoid(self.label_head(context)) * self.label_prior_weight  # (batch, labels)
            added = added + ops.repeat(ops.pad(head, [[0, 0], [NUM_SPECIAL, 0]]), beam_size, axis=0)
        if prior is not None:
            added = added + ops.repeat(ops.pad(prior, [[0, 0], [NUM_SPECIAL, 0]]), beam_size, axis=0)

        def step_fn(prev_ids, states):
            embedded = self.label_embedding(prev_ids)
            if self.feedback == "global":
                states, previous_probs = states
                embedded = self._feedback_input(embedded, previous_probs)
            output, states = self.cell.decoding_step(embedded, states)
            if memory is not None:
                query = ops.reshape(output, (-1, beam_size, self.decoder_units))  # (batch, beam, units)
                output, _ = self.attention(query, *memory)
                output = ops.reshape(output, (-1, self.decoder_units))
            logits = self.head(output)
            if self.feedback == "global":
                states = (states, self._feedback_probs(logits))
            return logits + added, states

        return step_fn, states

    def generate(
        self, texts, beam_size: int = 1, max_labels: int | None = None, return_beams: bool = False, prior=None
    ):
        """Decodes a batch of raw strings `(batch,)`, feeding back the model's own predictions.

        `prior`: float `(batch, num_labels)` added to every step's label logits, or None.

        Returns:
            `(ids, probs, log_prob)`: ids/probs `(batch, max_labels + 1)` (labels in
            generation order, then EOS, then PAD) and the sequence log-probability
            `(batch,)`; with `return_beams`, every beam hypothesis, best first:
            `(batch, beam_size, max_labels + 1)` and `(batch, beam_size)`. See
            `mlgen.decoding`.
        """
        step_fn, states = self.step_function(self.text_vectorizer(texts), beam_size, prior)
        return decoding.search(
            step_fn,
            states,
            beam_size=beam_size,
            vocab_size=self.num_label_ids,
            max_labels=self.max_labels if max_labels is None else max_labels,
            min_labels=self.min_labels,
            return_beams=return_beams,
        )

    def attention_weights(self, token_ids, decoder_input):
        """Attention weights `(batch, steps, length)` for given label sequences (teacher
        forcing): row `t` is what the decoder read to choose the label at step `t`."""
        if self.attention is None:
            raise ValueError("this model has no attention (train with --attention dot|general|concat)")
        states, memory = self.encode(token_ids, training=False)
        return self.decode(states, memory, decoder_input, training=False)[1]

    def generate_function(self, beam_size: int = 1, max_labels: int | None = None, return_beams: bool = False):
        """`generate` compiled with `tf.function` for any batch size, cached per settings.

        It takes the texts `(batch,)` and a prior `(batch, num_labels)` (zeros for none):
        one compiled function per setting, so that decoding with and without the
        linear-br ensemble does not trace twice.
        """
        key = (beam_size, max_labels, return_beams)
        if key not in self._compiled_functions:

            def generate(texts, prior):
                return self.generate(texts, beam_size, max_labels, return_beams, prior)

            signature = [tf.TensorSpec([None], tf.string), tf.TensorSpec([None, len(self.labels)], tf.float32)]
            # No autograph: the search loop is an explicit `ops.while_loop`.
            self._compiled_functions[key] = tf.function(generate, input_signature=signature, autograph=False)
        return self._compiled_functions[key]

    def label_probabilities_function(self):
        """Raw strings `(batch,)` -> the label head's probabilities `(batch, num_labels)`, compiled once."""
        if self.label_head is None:
            raise ValueError("this model has no label head (train with --label-loss-weight above 0)")
        if "label_probabilities" not in self._compiled_functions:
            self._compiled_functions["label_probabilities"] = tf.function(
                lambda texts: ops.sigmoid(self.label_head(self.read(self.text_vectorizer(texts), training=False)[0])),
                input_signature=[tf.TensorSpec([None], tf.string)],
                autograph=False,
            )
        return self._compiled_functions["label_probabilities"]

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=self.cell_type,
            decoder_units=self.decoder_units,
            decoder_layers=self.decoder_layers,
            context=self.context,
            attention=self.attention_score,
            scheduled_sampling=self.scheduled_sampling,
            label_embedding_dim=self.label_embedding_dim,
            max_labels=self.max_labels,
            min_labels=self.min_labels,
            label_loss_weight=self.label_loss_weight,
            targets=self.targets,
            loss=self.loss_type,
            feedback=self.feedback,
        )
        return config


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
