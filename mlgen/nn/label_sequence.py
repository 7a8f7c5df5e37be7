"""The CNN-RNN label-sequence network (Chen et al., IJCNN 2017): its layers and how they run.

A CNN reads the document into a text feature vector; an RNN decoder, conditioned on
that vector at every step, writes the label set one label at a time. `call` runs it with
teacher forcing (the decoder fed whole label sequences); `decoding_start` gives the
next-label function that inference (`mlgen.nn.inference`) searches with. What it trains
on (label orders, scheduled sampling, losses) lives in `mlgen.nn.targets`; this module imports
neither that nor inference or decoding.
"""

from __future__ import annotations

import keras
from keras import ops

from mlgen.config import ModelConfig
from mlgen.data.vocab import BOS_ID, NUM_SPECIAL, PAD_ID
from mlgen.nn.backbone import CNNTextModel
from mlgen.nn.layers.attention import LuongAttention
from mlgen.nn.layers.decoder_cell import LabelDecoderCell

# Global feedback's softmax temperature over the previous step's logits (SGM's released code).
FEEDBACK_TEMPERATURE = 0.1


@keras.saving.register_keras_serializable(package="mlgen")
class LabelSequenceModel(CNNTextModel):
    """Text in, label sequence out. Holds its text vectorizer and label names.

    Args:
        labels: label names in id order (`LabelVocabulary.labels`); ids 0-2 are
            PAD, BOS, EOS.
        config: the hyperparameters (`ModelConfig`; see `mlgen train --help`). The
            network reads:
            - the encoder's (`max_tokens`, `sequence_length`, `embedding_dim`,
              `filter_sizes`, `num_filters`, `dropout`, `word_dropout`; see
              `CNNTextEncoder`);
            - `cell`, `decoder_units`, `decoder_layers`, `context`: the decoder cell
              (`LabelDecoderCell`);
            - `attention`: `"none"`, or a `LuongAttention` score over the encoder's
              per-position features;
            - `scheduled_sampling`: the network holds the `sampling_probability`
              weight and the `seed_generator` that scheduled sampling
              (`mlgen.nn.targets`) draws from;
            - `label_embedding_dim`, `max_labels`, `min_labels`;
            - `label_loss_weight`: if > 0, a `label_head` (one sigmoid per label on the
              text feature vector) trains beside the decoder (its loss:
              `mlgen.nn.targets`), and decoding adds `label_prior_weight` times its
              log-sigmoid to every step's label logits (a product of the two models);
            - `feedback`: how the previous label enters a step. `"hard"`: its embedding.
              `"global"` (SGM's global embedding, Yang et al. 2018): a learned gate `H`
              between that embedding `e` and the probability-weighted mean `ē` of all
              label embeddings under the previous step's distribution (softmax of its
              logits at temperature `FEEDBACK_TEMPERATURE`): `(1 - H) * e + H * ē`.
              Decoding computes it step by step; teacher forcing takes `ē` from a first,
              gradient-free pass over the gold inputs.
            What the network trains on (`label_order`, `loss`, `scheduled_sampling`,
            `label_loss_weight`) lives in `mlgen.nn.targets.SequenceTargets`.

    Call arguments:
        inputs: `(token_ids, decoder_input)`: int `(batch, sequence_length)` and
            int `(batch, steps)` = BOS + gold labels, PAD after.
        training: in training, the attached `training_targets` (see `CNNTextModel`)
            add the label head's loss and may replace decoder inputs (scheduled
            sampling) before the decoder runs.

    Returns:
        Logits `(batch, steps, len(labels) + 3)` for the next label at every step.
    """

    def __init__(self, labels, config: ModelConfig, **kwargs):
        super().__init__(labels, config, **kwargs)
        self.num_label_ids = len(self.labels) + NUM_SPECIAL
        self.label_embedding = keras.layers.Embedding(
            self.num_label_ids, config.label_embedding_dim, name="label_embedding"
        )
        self.cell = LabelDecoderCell(
            config.decoder_units,
            self.encoder.output_dim,
            cell_type=config.cell,
            num_layers=config.decoder_layers,
            context=config.context,
            name="decoder_cell",
        )
        self.decoder = keras.layers.RNN(self.cell, return_sequences=True, name="decoder")
        self.attention = None
        if config.attention != "none":
            self.attention = LuongAttention(config.decoder_units, config.attention, name="attention")
        self.output_dropout = keras.layers.Dropout(config.dropout)
        self.head = keras.layers.Dense(self.num_label_ids, name="head")
        self.feedback_gate = None
        if config.feedback == "global":  # H = sigmoid(W1 e + W2 ē + b)
            self.feedback_gate = keras.layers.Dense(
                config.label_embedding_dim, activation="sigmoid", name="feedback_gate"
            )
        # Multi-task: one sigmoid per label on the text feature vector (a binary-relevance head).
        self.label_head = keras.layers.Dense(len(self.labels), name="label_head") if config.label_loss_weight else None
        # What scheduled sampling draws from (`mlgen.nn.targets`). Only models that sample draw from
        # the global seed (a default model's weights stay as they were).
        self.seed_generator = keras.random.SeedGenerator() if config.scheduled_sampling != "none" else None

    @property
    def max_labels(self) -> int:
        return self.model_config.max_labels

    @property
    def min_labels(self) -> int:
        return self.model_config.min_labels

    def input_shapes(self):
        """What `build` takes: token ids `(batch, sequence_length)`, decoder input `(batch, steps)`."""
        return (None, self.sequence_length), (None, None)

    def build(self, input_shape):
        token_shape, decoder_shape = input_shape
        self.encoder.build(token_shape)
        self.label_embedding.build(decoder_shape)
        self.cell.build((None, self.model_config.label_embedding_dim))
        self.decoder.build((None, None, self.model_config.label_embedding_dim))
        if self.attention is not None:
            self.attention.build((None, None, self.model_config.decoder_units), (None, None, self.encoder.output_dim))
        self.head.build((None, self.model_config.decoder_units))
        if self.feedback_gate is not None:
            self.feedback_gate.build((None, 2 * self.model_config.label_embedding_dim))
        if self.label_head is not None:
            self.label_head.build((None, self.encoder.output_dim))
        # Added to the EOS logit when decoding (not in training): tuned on dev after
        # training to trade precision for recall (`SequencePredictor.calibrate`).
        self.eos_bias = self.add_weight(name="eos_bias", shape=(), initializer="zeros", trainable=False)
        # The chance that a training step's decoder input is the model's own previous
        # prediction (scheduled sampling; set per epoch by `mlgen.nn.targets.ScheduledSampling`).
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

    def initial_states(self, token_ids, training=None):
        """The decoder's initial states and, with attention, the memory it reads.

        Returns:
            `(states, memory)`: `LabelDecoderCell` states and `memory` as in `read`.
        """
        features, memory = self.read(token_ids, training=training)
        return self.cell.initial_state(features), memory

    def decoder_outputs(self, states, memory, decoder_input, training=None):
        """Decoder outputs for whole label sequences (teacher forcing).

        Returns:
            `(outputs, weights)`: `(batch, steps, decoder_units)` and the attention
            weights `(batch, steps, length)` (None without attention).
        """
        embedded = self.label_embedding(decoder_input)  # (batch, steps, label_embedding_dim)
        # The mask is passed explicitly: PAD steps neither update the state nor reach the loss.
        mask = ops.not_equal(decoder_input, PAD_ID)
        if self.model_config.feedback == "global":
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
        if training and self.training_targets is not None:
            self.training_targets.add_losses(features, decoder_input)
            decoder_input = self.training_targets.decoder_input(states, memory, decoder_input)
        outputs, _ = self.decoder_outputs(states, memory, decoder_input, training=training)
        return self.head(self.output_dropout(outputs, training=training))  # (batch, steps, num_label_ids)

    def decoding_start(self, token_ids, beam_size: int = 1):
        """What a search over label ids needs, from one pass of the encoder.

        Args:
            token_ids: int `(batch, sequence_length)`.
            beam_size: hypotheses per document (beam search repeats each document's
                states; the attention memory stays per document).

        Returns:
            `(next_logits, states, features)`: `next_logits(prev_ids (rows,), states) ->
            (logits (rows, num_label_ids), states)` with rows = batch * beam_size, the
            decoder's own logits (what decoding adds to them is `mlgen.nn.inference`'s);
            the initial states; the text feature vector `(batch, features_dim)`. The
            cell's `decoding_step` reuses what depends on the text alone; the
            `beam_size` hypotheses of a document attend to its memory together, as
            `beam_size` query steps.
        """
        features, memory = self.read(token_ids, training=False)
        states = self.cell.decoding_state(features)
        global_feedback = self.model_config.feedback == "global"
        if global_feedback:  # the state carries the previous step's distribution
            states = (states, ops.one_hot(ops.full(ops.shape(features)[:1], BOS_ID, dtype="int32"), self.num_label_ids))
        units = self.model_config.decoder_units

        def next_logits(prev_ids, states):
            embedded = self.label_embedding(prev_ids)
            if global_feedback:
                states, previous_probs = states
                embedded = self._feedback_input(embedded, previous_probs)
            output, states = self.cell.decoding_step(embedded, states)
            if memory is not None:
                query = ops.reshape(output, (-1, beam_size, units))  # (batch, beam, units)
                output, _ = self.attention(query, *memory)
                output = ops.reshape(output, (-1, units))
            logits = self.head(output)
            if global_feedback:
                states = (states, self._feedback_probs(logits))
            return logits, states

        return next_logits, states, features

    def attention_weights(self, token_ids, decoder_input):
        """Attention weights `(batch, steps, length)` for given label sequences (teacher
        forcing): row `t` is what the decoder read to choose the label at step `t`."""
        if self.attention is None:
            raise ValueError("this model has no attention (train with --attention dot|general|concat)")
        states, memory = self.initial_states(token_ids, training=False)
        return self.decoder_outputs(states, memory, decoder_input, training=False)[1]
