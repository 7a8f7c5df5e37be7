"""Decision rules: one frozen dataclass per rule, written once against `ops`.

A rule turns what a model computes into label sets. It never touches arrays directly:
it asks `ops` for the parts (`ops.network()`, `ops.marginals(beam_size, linear_weight)`,
`ops.margins()`, ...) and combines them with `ops`' primitives (`sigmoid`, `logit`,
`choose`). Two backends implement `ops`:

- `mlgen.nn.prediction.GraphOps`: TensorFlow ops inside the one compiled prediction
  function that `predict`, `evaluate`, `compare`, the estimators and `export` run;
- `ArrayOps` (below): NumPy arrays, for fitting rules on dev (every candidate scored from
  one pass of the network) and for linear-br, which predicts without TensorFlow.

Every part is `(batch, num_labels)` in float64 (label columns in the vocabulary's
order). `ops.choose` and `ops.sequence` return the decision's outputs, a dict:

    label_ids  int `(batch, k)`: label columns, -1 after the document's labels;
    scores     float `(batch, k)`: each label's score (0 after the labels);
    num_labels int `(batch,)`;
    log_prob   float `(batch,)`: the label sequence's log-probability (NaN for a rule
               that scores labels independently).

Adding a rule: subclass `Rule` with its fields (each bounded in its `metadata`, which
`mlgen.decisions.policy` checks on load), its `outputs` (and `scores` if it ranks the
labels), decorate it with `@register("name")`, and give a fit function candidates of it
(`mlgen.decisions.fit`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from mlgen.decisions import expected_f1

# Rule classes by name (`register`); a decision file names its rules by these.
RULES: dict[str, type[Rule]] = {}

# The largest weight on linear-br's margins a run folder may hold (fits try at most 16; far larger
# ones swamp the network's logits and overflow float32 into NaN scores).
MAX_LINEAR_WEIGHT = 1000.0
# Probabilities are clipped this far from 0 and 1 before their logit.
EPSILON = 1e-7


def register(name: str):
    """Class decorator: the rule is known as `name` in decision files and to `decision=`."""

    def decorator(cls):
        RULES[name] = cls
        cls.name = name
        return cls

    return decorator


def bounded(default=dataclasses.MISSING, *, low=None, high=None, kind="number", scores=True):
    """A rule's field with what a decision file may hold for it: `kind` `"number"` (finite, from
    `low` to `high`; a string names a limit the model gives, see `mlgen.decisions.policy`),
    `"count"` (a whole number), `"bool"`, `"text"` (a string), `"numbers"` (a list of numbers,
    each from `low` to `high`) or `"threshold"` (a number, or one per label). `scores`: whether
    the field changes the rule's `scores` (a threshold only decides)."""
    return dataclasses.field(default=default, metadata={"low": low, "high": high, "kind": kind, "scores": scores})


@dataclasses.dataclass(frozen=True)
class Rule:
    """A decision rule. `linear_weight`: the weight of the linear-br ensemble's margins added to
    the network's label logits (0: the network alone)."""

    name: ClassVar[str] = "rule"

    linear_weight: float = bounded(0.0, low=0.0, high=MAX_LINEAR_WEIGHT)

    def outputs(self, ops) -> dict:
        """The label sets: the outputs dict (module docstring)."""
        raise NotImplementedError

    def scores(self, ops):
        """Every label's score `(batch, num_labels)`, which ranks the labels, or None for a rule
        that does not score every label."""
        return None

    def gives_probabilities(self, margins: bool) -> bool:
        """Whether `scores` are probabilities (else margins), the network's scores being `margins`
        (binary relevance's SVM) or probabilities."""
        return True

    def scoring(self) -> tuple:
        """What `scores` depends on: two rules with equal `scoring()` give the same scores."""
        fields = dataclasses.fields(self)
        return (type(self), *(getattr(self, f.name) for f in fields if f.metadata.get("scores", True)))

    @property
    def uses_linear(self) -> bool:
        """Whether the rule draws on the linear-br ensemble."""
        return bool(self.linear_weight)

    def problem(self) -> str | None:
        """What is wrong with the fields together (each alone is checked by its bounds), or None."""
        return None


@register("mode")
@dataclasses.dataclass(frozen=True)
class Mode(Rule):
    """The most probable label sequence (greedy search for `beam_size` 1, else beam search):
    labels in generation order, each scored by its probability at its step."""

    beam_size: int = bounded(1, low=1, high="beam_limit", kind="count")

    def outputs(self, ops) -> dict:
        return ops.sequence(self.beam_size, self.linear_weight)


@register("marginal")
@dataclasses.dataclass(frozen=True)
class Marginal(Rule):
    """Labels whose mixed score reaches `threshold` (one number, or one per label), highest first (at least the model's
    `min_labels`): `(1 - head_weight - linear_mix) * marginal + head_weight * head +
    linear_mix * sigmoid(margin)`, `marginal` the share of a `beam_size` beam's probability
    mass on hypotheses holding the label, `head` the label head's probability."""

    head_weight: float = bounded(0.0, low=0.0, high=1.0)
    linear_mix: float = bounded(0.0, low=0.0, high=1.0)
    threshold: float | tuple[float, ...] = bounded(0.5, low=0.0, high=1.0, kind="threshold", scores=False)
    beam_size: int = bounded(5, low=2, high="beam_limit", kind="count")

    def scores(self, ops):
        scores = (1.0 - self.head_weight - self.linear_mix) * ops.marginals(self.beam_size, self.linear_weight)
        if self.head_weight:
            scores = scores + self.head_weight * ops.head()
        if self.linear_mix:
            scores = scores + self.linear_mix * ops.sigmoid(ops.margins())
        return scores

    def outputs(self, ops) -> dict:
        return ops.choose(self.scores(ops), self.threshold, always_top=ops.min_labels > 0, min_labels=ops.min_labels)

    @property
    def uses_linear(self) -> bool:
        return bool(self.linear_weight or self.linear_mix)

    def problem(self) -> str | None:
        if self.head_weight + self.linear_mix > 1 + 1e-9:
            return '"head_weight" and "linear_mix" add up to more than 1'
        return None


@register("expected-f1")
@dataclasses.dataclass(frozen=True)
class ExpectedF1(Rule):
    """The label set of largest expected example-based F1 (`mlgen.decisions.expected_f1`) under
    the distribution a `beam_size` beam gives: its hypotheses, weighted by the softmax of their
    log-probabilities divided by `temperature`."""

    temperature: float = bounded(1.0, low=0.05, high=20.0)
    beam_size: int = bounded(5, low=2, high="beam_limit", kind="count")

    def outputs(self, ops) -> dict:
        return ops.beam_expected_f1(self.beam_size, self.linear_weight, self.temperature)


@register("threshold")
@dataclasses.dataclass(frozen=True)
class Threshold(Rule):
    """Binary relevance: labels whose score reaches `threshold` (one number, or one per label),
    highest first; with `always_top`, a document nothing reaches gets its top label. With the
    linear-br ensemble the score is `(1 - linear_mix) * sigmoid(logit(p) + linear_weight *
    margin) + linear_mix * sigmoid(margin)` of the network's probability `p`."""

    threshold: float | tuple[float, ...] = bounded(
        0.0, low="score_low", high="score_high", kind="threshold", scores=False
    )
    always_top: bool = bounded(False, kind="bool", scores=False)
    linear_mix: float = bounded(0.0, low=0.0, high=1.0)

    def scores(self, ops):
        scores = ops.network()
        if not self.uses_linear:
            return scores
        margins = ops.margins()
        fused = ops.sigmoid(ops.logit(scores) + self.linear_weight * margins)
        return (1.0 - self.linear_mix) * fused + self.linear_mix * ops.sigmoid(margins)

    def outputs(self, ops) -> dict:
        return ops.choose(self.scores(ops), self.threshold, always_top=self.always_top)

    def gives_probabilities(self, margins: bool) -> bool:
        return not margins or self.uses_linear  # with the ensemble: the fused sigmoid

    @property
    def uses_linear(self) -> bool:
        return bool(self.linear_weight or self.linear_mix)


@register("expected-f1-independent")
@dataclasses.dataclass(frozen=True)
class IndependentExpectedF1(Rule):
    """Binary relevance's label set of largest expected example-based F1, the labels taken as
    independent with probabilities `sigmoid(scale * x + shift)` (Platt scaling fitted on dev),
    `x` the logit of `Threshold`'s scores (`logit`), or those scores (margins); with
    `always_top`, never the empty set."""

    linear_mix: float = bounded(0.0, low=0.0, high=1.0)
    scale: float = bounded(1.0, low=-1000.0, high=1000.0)
    shift: float = bounded(0.0, low=-1000.0, high=1000.0)
    always_top: bool = bounded(False, kind="bool", scores=False)
    logit: bool = bounded(True, kind="bool")

    def scores(self, ops):
        mixed = Threshold(linear_weight=self.linear_weight, linear_mix=self.linear_mix).scores(ops)
        return ops.sigmoid(self.scale * (ops.logit(mixed) if self.logit else mixed) + self.shift)

    def outputs(self, ops) -> dict:
        return ops.independent_expected_f1(self.scores(ops), allow_empty=not self.always_top)

    @property
    def uses_linear(self) -> bool:
        return bool(self.linear_weight or self.linear_mix)


class ArrayOps:
    """`ops` over NumPy arrays computed beforehand (a network's pass over dev, linear-br's scores).

    Args:
        network, margins, head: `(n_docs, num_labels)` arrays, or None where the model has none.
        marginals, sequences, hypotheses: by `(beam_size, linear_weight)`, the beam marginals
            `(n_docs, num_labels)`, the most probable sequences' outputs dict, and every
            hypothesis: `label_ids` `(n_docs, beam_size, steps)` (-1 after its labels) and
            `log_prob` `(n_docs, beam_size)`.
        min_labels: fewest labels per document (the model's); max_labels: most (None: any).
        num_labels: the label columns (None: those of the arrays given).
    """

    def __init__(
        self,
        network=None,
        margins=None,
        head=None,
        marginals=None,
        sequences=None,
        hypotheses=None,
        min_labels=0,
        max_labels=None,
        num_labels=None,
    ):
        self._network, self._margins, self._head = network, margins, head
        self._marginals, self._sequences, self._hypotheses = marginals or {}, sequences or {}, hypotheses or {}
        self.min_labels, self.max_labels, self._num_labels = min_labels, max_labels, num_labels

    def network(self):
        return _float64(self._network)

    def margins(self):
        return _float64(self._margins)

    def head(self):
        return _float64(self._head)

    def marginals(self, beam_size: int, linear_weight: float):
        return _float64(self._marginals[beam_size, linear_weight])

    def sequence(self, beam_size: int, linear_weight: float) -> dict:
        return self._sequences[beam_size, linear_weight]

    def beam_expected_f1(self, beam_size: int, linear_weight: float, temperature: float) -> dict:
        """The expected-F1 set under a beam's hypotheses (`ExpectedF1`)."""
        hypotheses = self._hypotheses[beam_size, linear_weight]
        log_prob = np.asarray(hypotheses["log_prob"], np.float64) / temperature
        weights = np.exp(log_prob - log_prob.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        statistics, empty = expected_f1.set_statistics(hypotheses["label_ids"], weights, self.num_labels)
        allow_empty = self.min_labels == 0
        chosen, _ = expected_f1.maximize(statistics, empty, allow_empty=allow_empty, max_size=self.max_labels)
        return expected_f1.outputs(chosen, statistics.sum(axis=2))

    def independent_expected_f1(self, probs, allow_empty: bool) -> dict:
        """The expected-F1 set of labels independent with probabilities `probs` (`IndependentExpectedF1`),
        computed on each document's candidates alone (`expected_f1.independent_statistics` keeps no
        others), taken in column order so that ties go to the lower column."""
        probs = np.asarray(probs, np.float64)
        kept = min(expected_f1.CANDIDATES, probs.shape[1])
        columns = np.sort(np.argsort(-probs, axis=1, kind="stable")[:, :kept], axis=1)  # (n_docs, kept)
        statistics, empty = expected_f1.independent_statistics(np.take_along_axis(probs, columns, axis=1), kept)
        chosen, _ = expected_f1.maximize(statistics, empty, allow_empty=allow_empty, max_size=self.max_labels)
        dense = np.zeros(probs.shape, bool), np.zeros(probs.shape)
        np.put_along_axis(dense[0], columns, chosen, axis=1)
        np.put_along_axis(dense[1], columns, statistics.sum(axis=2), axis=1)
        return expected_f1.outputs(*dense)

    @property
    def num_labels(self) -> int:
        if self._num_labels is not None:
            return self._num_labels
        known = (self._network, self._margins, self._head, *self._marginals.values())
        return next(np.shape(part)[1] for part in known if part is not None)

    @staticmethod
    def sigmoid(x):
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))  # never overflows; scipy's expit would load scipy

    @staticmethod
    def logit(p):
        p = np.clip(p, EPSILON, 1 - EPSILON)
        return np.log(p) - np.log1p(-p)

    @staticmethod
    def interp(x, knots, values):
        """The piecewise-linear map through `(knots, values)` at `x` (flat beyond the ends)."""
        return np.interp(x, knots, values)

    def choose(self, scores, threshold, always_top: bool = False, min_labels: int = 0) -> dict:
        """The labels whose score reaches `threshold`, highest first, then the best others up to
        `min_labels`, at most `max_labels` (`mlgen.nn.prediction.GraphOps.choose` in NumPy)."""
        scores = np.asarray(scores, np.float64)
        chosen = scores >= np.asarray(threshold, np.float64)
        if always_top and scores.shape[1]:
            empty = ~chosen.any(axis=1)
            chosen[empty] |= _top(scores[empty])
        # Chosen labels first, each group highest score first (ties: the lower column).
        order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores, ~chosen), axis=1)
        count = np.maximum(chosen.sum(axis=1), min_labels)
        if self.max_labels is not None:
            count = np.minimum(count, self.max_labels)
        width = int(count.max(initial=0))
        shown = np.arange(width)[None, :] < count[:, None]
        order = order[:, :width]
        return {
            "label_ids": np.where(shown, order, -1),
            "scores": np.where(shown, np.take_along_axis(scores, order, axis=1), 0.0),
            "num_labels": count,
            "log_prob": np.full(len(scores), np.nan),
        }


def _top(scores: np.ndarray) -> np.ndarray:
    """Bool, the same shape: each row's first highest score."""
    top = np.zeros(scores.shape, bool)
    top[np.arange(len(scores)), np.argmax(scores, axis=1)] = True
    return top


def _float64(array):
    if array is None:
        raise ValueError("this model does not have that part")
    return np.asarray(array, np.float64)
