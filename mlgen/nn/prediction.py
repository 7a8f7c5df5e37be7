"""The one prediction path: raw strings in, a decision rule's label sets out, in one compiled function.

`PredictionGraph.function(rule, ranking, max_labels, calibration)` compiles, per setting, a `tf.function`
from raw strings `(batch,)` to the rule's outputs: the text vectorizer, the network, the
search (`mlgen.nn.inference.generate`), the linear-br ensemble's TF-IDF and margins
(`mlgen.nn.tfidf`), the mixing and the decision, each computed once per batch however many
times the rules ask for it (`GraphOps`). `predict`, `evaluate`, `compare` and the estimators
run it through `predict`; `mlgen export` saves it (`mlgen.nn.serving`). The rules themselves
are `mlgen.decisions`': this module is their TensorFlow backend.

The outputs, as `mlgen.decisions.rules` describes them: `label_ids` int32 `(batch, k)` (-1
after the labels), `scores` float32 `(batch, k)`, `num_labels` int32 `(batch,)`, `log_prob`
float32 `(batch,)` (NaN for rules that score labels independently) and, with a ranking rule,
`label_scores` float32 `(batch, num_labels)`: every label's score by that rule, and with a
calibration (`mlgen.decisions.calibration`) `probabilities` float32 `(batch, num_labels)`: those
scores as probabilities.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import tensorflow as tf

from mlgen.data.vocab import EOS_ID, NUM_SPECIAL
from mlgen.decisions.rules import EPSILON
from mlgen.nn import inference, set_decisions

# Tokens per compiled predict call. Short texts get large batches (they spread the decoding
# loop's per-step cost over more documents), long ones smaller (the CNN's feature maps stay
# in cache): 256 documents of 200 tokens were faster than 512 or 1,024 on Reuters, 2,048
# titles of 20 tokens faster than 256 on cooking_se.
PREDICT_TOKENS = 256 * 200
# Labels the first greedy pass allows (see `GraphOps.sequence`).
FIRST_PASS_LABELS = 3
# Most search rows (documents times beam) per compiled call: a wide beam gets fewer documents
# per batch, so that memory stays bounded whatever the beam (beams up to 8 keep the batch size).
MAX_SEARCH_ROWS = 16384
SIGNATURE = [tf.TensorSpec([None], tf.string, name="texts")]


class _OncePerSetting(logging.Filter):
    """Drops TensorFlow's notice that calls "triggered tf.function retracing": it counts the
    functions of one Python code object, and `PredictionGraph.function` compiles one per
    setting by design (each rule a user asks for once, e.g. `compare`'s five metrics), each
    traced once."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing_notice() -> None:
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OncePerSetting) for f in logger.filters):
        logger.addFilter(_OncePerSetting())


def predict_batch_size(sequence_length: int) -> int:
    """Documents per predict call for texts of `sequence_length` tokens (64 to 2,048)."""
    return max(64, min(2048, PREDICT_TOKENS // max(sequence_length, 1)))


def search_batch_size(batch_size: int, beam_size: int) -> int:
    """Documents per search call: `batch_size`, fewer when `beam_size` would make more than
    `MAX_SEARCH_ROWS` rows."""
    return max(1, min(batch_size, MAX_SEARCH_ROWS // beam_size))


class PredictionGraph:
    """A trained model's prediction function, compiled once per setting.

    Args:
        num_labels: the label columns.
        model: the Keras network (`LabelSequenceModel` or `BinaryRelevanceModel`), or None for
            linear-br's export (its scores are the margins).
        linear: `linear() -> LinearMargins`, the linear-br model as TensorFlow ops (built on
            first use), or None without one.
        logistic: with no `model`, the scores are the margins' sigmoid (`classifier="logreg"`).
        sequence_length: tokens per text, for the batch size (default 200).
    """

    def __init__(self, num_labels: int, model=None, linear=None, logistic: bool = False, sequence_length: int = 200):
        self.num_labels = num_labels
        self.model = model
        self.sequential = model is not None and hasattr(model, "decoding_start")
        self._linear_factory, self._linear = linear, None
        self.logistic = logistic
        self.sequence_length = sequence_length
        self._functions = {}

    @property
    def min_labels(self) -> int:
        return self.model.min_labels if self.sequential else 0

    def linear(self):
        """The linear-br model's `LinearMargins` (built on first use), or None."""
        if self._linear is None and self._linear_factory is not None:
            with tf.init_scope():  # its tables and constants outlive the trace that first asks for them
                self._linear = self._linear_factory()
        return self._linear

    def max_labels(self, max_labels: int | None) -> int | None:
        """The most labels a document gets: `max_labels`, else the model's (none for binary relevance)."""
        if self.sequential:
            return inference.label_limit(self.model, max_labels)
        return max_labels

    def function(self, rule, ranking=None, max_labels: int | None = None, calibration=None):
        """The compiled `texts (batch,) -> outputs` of `rule` (and `label_scores` by `ranking`'s
        scores, a rule or None, and their `probabilities` by `calibration`, which needs `ranking`),
        cached per setting."""
        key = ("outputs", rule, ranking, max_labels, calibration)
        if key not in self._functions:

            def outputs(texts):
                ops = GraphOps(self, texts, self.max_labels(max_labels))
                result = rule.outputs(ops)
                result = {
                    "label_ids": tf.cast(result["label_ids"], tf.int32),
                    "scores": tf.cast(result["scores"], tf.float32),
                    "num_labels": tf.cast(result["num_labels"], tf.int32),
                    "log_prob": tf.cast(result["log_prob"], tf.float32),
                }
                if ranking is not None:
                    scores = ranking.scores(ops)
                    result["label_scores"] = tf.cast(scores, tf.float32)
                    if calibration is not None:
                        result["probabilities"] = tf.cast(calibration.apply(ops, scores), tf.float32)
                return result

            # No autograph: the search loop is an explicit `ops.while_loop`.
            self._functions[key] = tf.function(outputs, input_signature=SIGNATURE, autograph=False)
            _quiet_retracing_notice()
        return self._functions[key]

    def predict(
        self, texts, rule, ranking=None, max_labels: int | None = None, batch_size: int | None = None, calibration=None
    ) -> dict:
        """`function(rule, ranking, max_labels, calibration)` over `texts` in batches: the outputs as
        NumPy arrays, `label_ids` and `scores` padded to the widest batch."""
        beam = max(getattr(rule, "beam_size", 1), getattr(ranking, "beam_size", 1))
        function = self.function(rule, ranking, max_labels, calibration)
        return concatenate([function(batch) for batch in self._batches(texts, beam, batch_size)])

    def parts(self, texts, wanted: tuple, linear_weight: float = 0.0, batch_size: int | None = None) -> dict:
        """The parts `wanted` of `texts`, as NumPy arrays, for fitting rules on them.

        Args:
            wanted: names (`"network"`, `"margins"`, `"head"`) and tuples `("marginals",
                beam_size)`, `("sequence", beam_size)` or `("hypotheses", beam_size)`: searched
                with linear-br's margins times `linear_weight` on the logits (an input of the
                compiled function: one trace serves every weight a fit tries).

        Returns:
            By each of `wanted`: `(len(texts), num_labels)` float64, or (sequences, hypotheses) a dict.
        """
        key = ("parts", wanted)
        if key not in self._functions:

            def parts(texts, weight):
                ops = GraphOps(self, texts, self.max_labels(None))
                weight = weight if self.linear() is not None else 0.0
                return [
                    getattr(ops, part)() if isinstance(part, str) else getattr(ops, part[0])(part[1], weight)
                    for part in wanted
                ]

            signature = [*SIGNATURE, tf.TensorSpec([], tf.float32, name="linear_weight")]
            self._functions[key] = tf.function(parts, input_signature=signature, autograph=False)
            _quiet_retracing_notice()
        beam = max((part[1] for part in wanted if not isinstance(part, str)), default=1)
        weight = tf.constant(linear_weight, tf.float32)
        batches = [self._functions[key](batch, weight) for batch in self._batches(texts, beam, batch_size)]
        return (
            {
                part: concatenate([b[i] for b in batches])
                if isinstance(batches[0][i], dict)
                else concatenate_arrays([b[i] for b in batches])
                for i, part in enumerate(wanted)
            }
            if batches
            else {}
        )

    def _batches(self, texts, beam_size: int, batch_size: int | None):
        size = search_batch_size(batch_size or predict_batch_size(self.sequence_length), beam_size)
        for start in range(0, len(texts), size):
            yield tf.constant([str(t) for t in texts[start : start + size]], tf.string)


class GraphOps:
    """The `ops` of `mlgen.decisions.rules` in TensorFlow, over one batch of raw strings: each part
    is computed once, however many rules ask for it (the mode and the marginals of one beam
    search share it).

    Args:
        graph: the `PredictionGraph`.
        texts: string `(batch,)`.
        max_labels: most labels per document (None: any).
    """

    def __init__(self, graph: PredictionGraph, texts, max_labels: int | None):
        self.graph, self.texts, self.max_labels = graph, texts, max_labels
        self.min_labels = graph.min_labels
        self._parts = {}

    def _once(self, key, compute):
        if key not in self._parts:
            self._parts[key] = compute()
        return self._parts[key]

    @property
    def model(self):
        return self.graph.model

    def token_ids(self):
        return self._once("token_ids", lambda: self.model.text_vectorizer(self.texts))

    def network(self):
        """The model's own scores: cnn-br's sigmoids; linear-br's margins (`svc`) or their sigmoid."""

        def compute():
            if self.model is None:
                margins = self._margins()
                return tf.sigmoid(margins) if self.graph.logistic else margins
            return tf.sigmoid(self.model(self.token_ids(), training=False))

        return tf.cast(self._once("network", compute), tf.float64)

    def _margins(self):
        return self._once("margins", lambda: self.graph.linear()(self.texts))  # float32 (batch, num_labels)

    def margins(self):
        return tf.cast(self._margins(), tf.float64)

    def head(self):
        model = self.model

        def compute():
            return tf.sigmoid(model.label_head(model.read(self.token_ids(), training=False)[0]))

        return tf.cast(self._once("head", compute), tf.float64)

    def _prior(self, linear_weight):
        """linear-br's margins times `linear_weight` (a number, or a scalar tensor), or zeros."""
        if tf.is_tensor(linear_weight) or linear_weight:
            return linear_weight * self._margins()
        return tf.zeros([tf.shape(self.texts)[0], self.graph.num_labels])

    def _beams(self, beam_size: int, linear_weight):
        """Every hypothesis of a `beam_size` beam search: ids and probs `(batch, beam, steps)`,
        log-probabilities `(batch, beam)`."""
        return self._once(
            ("beams", beam_size, _key(linear_weight)),
            lambda: inference.generate(
                self.model, self.token_ids(), self._prior(linear_weight), beam_size, self.max_labels, return_beams=True
            ),
        )

    def marginals(self, beam_size: int, linear_weight: float):
        """Each label's share of a `beam_size` beam's probability mass `(batch, num_labels)`: the
        summed probability (normalised over the beam) of the hypotheses that hold it."""
        ids, _, log_probs = self._beams(beam_size, linear_weight)
        weights = tf.nn.softmax(log_probs, axis=1)  # (batch, beam)
        # Each emitted label adds its hypothesis's weight at (document, label): a scatter, not a one-hot
        # `(batch, beam, steps, num_labels)` (181 MB for 2,048 titles over cooking_se's 736 labels).
        shown = emitted(ids)  # (batch, beam, steps)
        where = tf.where(shown)  # (n, 3): document, hypothesis, step
        labels = tf.gather_nd(ids, where) - NUM_SPECIAL
        added = tf.gather_nd(weights, where[:, :2])
        shape = tf.stack([tf.shape(ids, out_type=tf.int64)[0], self.graph.num_labels])
        marginals = tf.scatter_nd(tf.stack([where[:, 0], tf.cast(labels, tf.int64)], axis=1), added, shape)
        return tf.cast(marginals, tf.float64)

    def hypotheses(self, beam_size: int, linear_weight: float) -> dict:
        """Every hypothesis of a `beam_size` beam: `label_ids` `(batch, beam, steps)` (-1 after
        its labels) and `log_prob` `(batch, beam)` (for fitting set rules on dev)."""
        ids, _, log_probs = self._beams(beam_size, linear_weight)
        return {"label_ids": tf.where(emitted(ids), ids - NUM_SPECIAL, -1), "log_prob": log_probs}

    def beam_expected_f1(self, beam_size: int, linear_weight: float, temperature: float) -> dict:
        """The expected-F1 set under a beam's hypotheses (`mlgen.decisions.rules.ExpectedF1`)."""
        ids, _, log_probs = self._beams(beam_size, linear_weight)
        return set_decisions.beam_expected_f1(
            ids - NUM_SPECIAL,
            emitted(ids),
            log_probs,
            self.graph.num_labels,
            temperature=temperature,
            allow_empty=self.min_labels == 0,
            max_size=self.max_labels,
        )

    def independent_expected_f1(self, probs, allow_empty: bool) -> dict:
        """The expected-F1 set of independent labels (`mlgen.decisions.rules.IndependentExpectedF1`)."""
        return set_decisions.independent_expected_f1(
            tf.cast(probs, tf.float64), allow_empty=allow_empty, max_size=self.max_labels
        )

    def sequence(self, beam_size: int, linear_weight: float) -> dict:
        """The most probable label sequence's outputs: the best hypothesis of a beam search, or
        greedy search in two passes. A batch's loop lasts as long as its longest sequence while
        most documents stop after a label or two, so every document first gets at most
        `FIRST_PASS_LABELS` labels, and those that reached that cap are searched again in full.
        Greedy steps before the cap do not depend on it, so the result is the one-pass search's."""
        if beam_size > 1:
            ids, probs, log_probs = self._beams(beam_size, linear_weight)
            return sequence_outputs(ids[:, 0], probs[:, 0], log_probs[:, 0])
        model, token_ids, prior, limit = self.model, self.token_ids(), self._prior(linear_weight), self.max_labels
        if limit <= FIRST_PASS_LABELS or model.min_labels >= FIRST_PASS_LABELS:
            return sequence_outputs(*inference.generate(model, token_ids, prior, 1, limit))
        ids, probs, log_prob = inference.generate(model, token_ids, prior, 1, FIRST_PASS_LABELS)
        capped = tf.where(ids[:, FIRST_PASS_LABELS - 1] >= NUM_SPECIAL)  # (n, 1): rows with the most labels allowed
        again = inference.generate(model, tf.gather_nd(token_ids, capped), tf.gather_nd(prior, capped), 1, limit)
        wider = [[0, 0], [0, limit - FIRST_PASS_LABELS]]
        ids = tf.tensor_scatter_nd_update(tf.pad(ids, wider), capped, again[0])
        probs = tf.tensor_scatter_nd_update(tf.pad(probs, wider), capped, again[1])
        return sequence_outputs(ids, probs, tf.tensor_scatter_nd_update(log_prob, capped, again[2]))

    @staticmethod
    def sigmoid(x):
        return tf.sigmoid(x)

    @staticmethod
    def logit(p):
        p = tf.clip_by_value(p, EPSILON, 1 - EPSILON)
        return tf.math.log(p) - tf.math.log1p(-p)

    @staticmethod
    def interp(x, knots, values):
        """`np.interp(x, knots, values)` in TensorFlow: the piecewise-linear map through the points,
        flat beyond the ends (`knots` increasing)."""
        knots, values = tf.constant(knots, tf.float64), tf.constant(values, tf.float64)
        flat = tf.reshape(tf.cast(x, tf.float64), [-1])
        right = tf.clip_by_value(tf.searchsorted(knots, flat, side="right"), 1, tf.size(knots) - 1)
        x0, x1 = tf.gather(knots, right - 1), tf.gather(knots, right)
        y0, y1 = tf.gather(values, right - 1), tf.gather(values, right)
        t = tf.clip_by_value((flat - x0) / (x1 - x0), 0.0, 1.0)
        return tf.reshape(y0 + t * (y1 - y0), tf.shape(x))

    def choose(self, scores, threshold, always_top: bool = False, min_labels: int = 0) -> dict:
        """The labels whose score reaches `threshold`, highest first, then the best others up to
        `min_labels`, at most `max_labels` (`mlgen.decisions.rules.ArrayOps.choose` in TensorFlow)."""
        scores = tf.cast(scores, tf.float64)
        chosen = scores >= tf.constant(threshold, tf.float64)
        if always_top:
            top = tf.one_hot(tf.argmax(scores, axis=1), tf.shape(scores)[1], on_value=True, off_value=False)
            chosen = chosen | (top & ~tf.reduce_any(chosen, axis=1, keepdims=True))
        by_score = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)
        unchosen = tf.cast(~tf.gather(chosen, by_score, batch_dims=1), tf.int32)
        order = tf.gather(by_score, tf.argsort(unchosen, axis=1, stable=True), batch_dims=1)  # chosen first
        count = tf.maximum(tf.reduce_sum(tf.cast(chosen, tf.int32), axis=1), min_labels)
        if self.max_labels is not None:
            count = tf.minimum(count, self.max_labels)
        width = tf.reduce_max(tf.concat([count, [0]], axis=0))
        order = order[:, :width]
        shown = tf.range(width)[None, :] < count[:, None]
        return {
            "label_ids": tf.where(shown, order, -1),
            "scores": tf.where(shown, tf.gather(scores, order, batch_dims=1), 0.0),
            "num_labels": count,
            "log_prob": tf.fill([tf.shape(scores)[0]], math.nan),
        }


def _key(linear_weight):
    """A weight as a cache key: a tensor input is one weight however often it is asked for."""
    return "input" if tf.is_tensor(linear_weight) else linear_weight


def emitted(ids):
    """Where `ids` (`(..., steps)`, from a search) hold a label: an id >= NUM_SPECIAL before the row's EOS."""
    return (ids >= NUM_SPECIAL) & (tf.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=-1) == 0)


def sequence_outputs(ids, probs, log_prob) -> dict:
    """A search's ids and step probabilities `(batch, steps)` and log-probabilities `(batch,)` as
    outputs: the labels before EOS, in generation order."""
    shown = emitted(ids)
    count = tf.reduce_sum(tf.cast(shown, tf.int32), axis=1)
    width = tf.reduce_max(tf.concat([count, [0]], axis=0))
    shown = shown[:, :width]
    return {
        "label_ids": tf.where(shown, ids[:, :width] - NUM_SPECIAL, -1),
        "scores": tf.where(shown, probs[:, :width], 0.0),
        "num_labels": count,
        "log_prob": log_prob,
    }


def concatenate_arrays(batches) -> np.ndarray:
    return np.concatenate([np.asarray(b) for b in batches])


def concatenate(batches) -> dict:
    """Outputs dicts of consecutive batches as one, `label_ids` (-1) and `scores` (0) padded to the widest
    (hypotheses' `label_ids` `(batch, beam, steps)` along their steps)."""
    if not batches:
        return {}
    width = max(int(b["label_ids"].shape[-1]) for b in batches)

    def padded(array, fill):  # along the last axis (labels, or a hypothesis's steps)
        array = np.asarray(array)
        return np.pad(array, [(0, 0)] * (array.ndim - 1) + [(0, width - array.shape[-1])], constant_values=fill)

    result = {"label_ids": np.concatenate([padded(b["label_ids"], -1) for b in batches])}
    if "scores" in batches[0]:
        result["scores"] = np.concatenate([padded(b["scores"], 0.0) for b in batches])
    for key in batches[0]:
        if key not in result:
            result[key] = concatenate_arrays([b[key] for b in batches])
    return result
