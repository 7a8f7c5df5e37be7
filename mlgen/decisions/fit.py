"""Fitting decision rules on dev, one for each metric, each candidate scored from one pass of the network.

`fit_sequence` fits cnn-rnn's rules (the mode, the marginal rule, the expected-F1 set over a
beam, with the linear-br ensemble's weights); `fit_threshold` binary relevance's (thresholds,
and the expected-F1 set under independence). Both fit a rule for every metric of
`mlgen.config.DECISION_METRICS`, each chosen among its candidates by that metric on dev, and
take `ArrayOps` of the dev documents, so a candidate is a `Rule` and its scores are computed
by the very code that predicts with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from mlgen import artifacts
from mlgen.config import DECISION_METRICS
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.decisions import calibration
from mlgen.decisions.policy import DecisionPolicy
from mlgen.decisions.rules import ArrayOps, ExpectedF1, IndependentExpectedF1, Marginal, Mode, Rule, Threshold
from mlgen.eval import metrics, thresholds

# The weights of linear-br's margins added to the network's label logits, and the shares of
# its sigmoid mixed into the label scores, that are tried besides 0.
LINEAR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LINEAR_MIXES = (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8)
# Weights of the label head's probability in the marginal rule's scores that are tried besides 0.
HEAD_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
# Temperatures of the beam's log-probabilities the expected-F1 rule tries (1: the model's own).
TEMPERATURES = (1.0, 0.5, 2.0)
# How many pseudo-positives pull a label's own macro-F1 threshold toward the global one
# (`mlgen.eval.thresholds.per_label`; infinitely many: the global one alone), tried in this
# order (ties keep the earlier).
SHRINKAGES = (math.inf, 100.0, 25.0, 10.0, 5.0, 2.0, 0.0)
# The dev scores kept of each candidate family a fit compares (`DecisionPolicy.dev_scores`).
DEV_SCORES = ("micro_f1", "macro_f1", "subset_accuracy", "micro_precision", "micro_recall")


def dev_truth(vocab: LabelVocabulary, dev: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    """Dev gold as a multi-hot `(n_docs, num_labels)` and, per document `(n_docs,)`, its
    gold labels outside the vocabulary (misses no decision can avoid), for tuning thresholds."""
    known = vocab.drop_unknown(dev.label_sets)
    missed = np.array([len(set(s)) - len(set(k)) for s, k in zip(dev.label_sets, known)], dtype=int)
    return vocab.to_multi_hot(known), missed


def label_sets(vocab: LabelVocabulary, outputs: dict) -> list[list[str]]:
    """The label names of a rule's outputs dict (see `mlgen.decisions.rules`), one list per document."""
    return [
        [vocab.labels[j] for j in row[:n]] for row, n in zip(np.asarray(outputs["label_ids"]), outputs["num_labels"])
    ]


def fit_sequence(
    dev: LabelledData,
    vocab: LabelVocabulary,
    parts: Callable[[float], ArrayOps],
    *,
    decision: str,
    mode_beam: int,
    marginal_beam: int,
    min_labels: int,
    has_head: bool,
    has_linear: bool,
    metric: str = "micro-f1",
) -> DecisionPolicy:
    """cnn-rnn's decision policy: a rule fitted on dev for each metric, `metric`'s the default.

    First the candidates of micro-F1, for each weight `linear_weight` of linear-br's margins
    added to every step's label logits (0, and with an ensemble each of `LINEAR_WEIGHTS`): the
    most probable sequence (`Mode`, a `mode_beam` and a `marginal_beam` search), and `Marginal`
    rules over a `marginal_beam` beam with each head weight (`HEAD_WEIGHTS`, models with a head)
    and share of linear-br's sigmoid (`LINEAR_MIXES`, with an ensemble). A marginal candidate is
    scored with each half of dev thresholded by the threshold tuned on the other half
    (`mlgen.eval.thresholds.cross_fit`), so that a tuned rule is not favoured by having seen the
    documents it is scored on. The best micro-F1 wins (ties keep the earlier, the plain mode first).

    Then, for each other metric: every mode candidate (each weight and beam), the winner's
    weight's best marginal rule with its threshold cross-fitted for that metric (macro-F1: one per
    label, shrunk toward the global one by each of `SHRINKAGES`) and, for samples-F1, the
    expected-F1 set over the `marginal_beam` hypotheses at the winner's weight with each of
    `TEMPERATURES` (`ExpectedF1`); the best dev score of that metric wins (ties: the earlier).

    Args:
        parts: `parts(linear_weight)`: the dev documents' `ArrayOps` at that weight, with the
            sequences of `mode_beam` and, unless `decision` is `"mode"`, of `marginal_beam`, and
            that beam's marginals and hypotheses.
        decision: `"mode"` or `"marginal"` keeps every metric's candidates to the mode or to the
            others, `"auto"` compares both.
        metric: the metric whose rule is the default (`mlgen.config.DECISION_METRICS`).

    Returns:
        The policy of each metric's rule, with a `Mode` at the micro winner's weight besides
        (`decision="mode"` and `explain` find it), and the dev scores of each family's best
        candidate (`"mode"`: the network's plain most probable sequence, always reported;
        `"marginal"`: its best marginal rule; `"linear-br"`: the best with the ensemble) and of
        each metric's rule, the default rule's family as `chosen`.
    """
    y_true, missed_per_doc = dev_truth(vocab, dev)
    halves = thresholds.halves(len(dev))
    always_top = min_labels > 0
    head_weights = (0.0, *(HEAD_WEIGHTS if has_head else ()))
    linear_mixes = (0.0, *(LINEAR_MIXES if has_linear else ()))
    mode_beams = tuple(dict.fromkeys((mode_beam, *((marginal_beam,) if decision != "mode" else ()))))

    def allowed(rule: Rule) -> bool:
        return decision == "auto" or (decision == "mode") == isinstance(rule, Mode)

    def scored(sets):
        return metrics.evaluate(dev.label_sets, sets, vocab.labels)

    def cross_fitted(scores, for_metric: str, shrinkage=None) -> dict:
        chosen = thresholds.cross_fit(scores, y_true, halves, always_top, missed_per_doc, for_metric, shrinkage)
        return scored(vocab.from_multi_hot(chosen))

    candidates = []  # (dev scores, rule): micro-F1's

    def best_of(options, for_metric: str = "micro-f1"):  # the allowed option with the best dev score, or None
        eligible = [i for i, (_, rule) in enumerate(options) if allowed(rule if isinstance(rule, Rule) else rule[0])]
        if not eligible:
            return None
        return options[max(eligible, key=lambda i: metrics.gain(options[i][0], for_metric))]

    ops_at = {}  # linear weight -> ArrayOps, kept for the best weight so far only (each holds dev-sized arrays)
    for weight in (0.0, *(LINEAR_WEIGHTS if has_linear else ())):
        leader = best_of(candidates)
        ops_at = {w: o for w, o in ops_at.items() if leader is not None and w == leader[1].linear_weight}
        ops = ops_at[weight] = parts(weight)
        if decision != "marginal" or not weight:  # the plain mode's dev scores are always reported
            for beam in mode_beams:
                rule = Mode(linear_weight=weight, beam_size=beam)
                candidates.append((scored(label_sets(vocab, rule.outputs(ops))), rule))
        if decision == "mode":
            continue
        for head_weight in head_weights:
            for linear_mix in (m for m in linear_mixes if head_weight + m <= 1):
                rule = Marginal(weight, head_weight, linear_mix, beam_size=marginal_beam)
                candidates.append((cross_fitted(rule.scores(ops), "micro-f1"), rule))
    best_scores, best = best_of(candidates)
    ops = ops_at[best.linear_weight]
    at_weight = [(s, r) for s, r in candidates if isinstance(r, Marginal) and r.linear_weight == best.linear_weight]
    marginal = max(at_weight, key=lambda c: c[0]["micro_f1"])[1] if at_weight else None
    modes = [(s, r) for s, r in candidates if isinstance(r, Mode)]

    decisions = {"micro-f1": (best_scores, (best, None) if isinstance(best, Marginal) else best)}
    for other in DECISION_METRICS:
        if other == "micro-f1":
            continue
        options = list(modes)
        if marginal is not None:
            options += _cross_fitted_options(marginal, marginal.scores(ops), other, cross_fitted)
        if other == "samples-f1" and decision != "mode":
            for temperature in TEMPERATURES:
                rule = ExpectedF1(best.linear_weight, temperature, beam_size=marginal_beam)
                options.append((scored(label_sets(vocab, rule.outputs(ops))), rule))
        decisions[other] = best_of(options, other)
    rules = {m: _tuned(option, ops, y_true, missed_per_doc, m, always_top) for m, (_, option) in decisions.items()}
    families = {
        "mode": lambda r: isinstance(r, Mode) and not r.linear_weight,
        "marginal": lambda r: isinstance(r, Marginal) and not r.uses_linear,
        artifacts.LINEAR_BR: lambda r: r.uses_linear,
    }
    dev_scores = {}
    for family, member in families.items():
        members = [s for s, r in candidates if member(r)]
        if members:
            dev_scores[family] = {key: max(members, key=lambda s: s["micro_f1"])[key] for key in DEV_SCORES}
    dev_scores.update(_metric_scores(decisions))
    chosen = next((family for family, member in families.items() if member(rules[metric])), None)
    mode = Mode(linear_weight=best.linear_weight, beam_size=mode_beam)
    return DecisionPolicy.fitted(rules, metric, dev_scores, chosen, others=(mode,))


def fit_threshold(
    dev: LabelledData,
    vocab: LabelVocabulary,
    ops: ArrayOps,
    *,
    per_label: bool,
    always_top: bool,
    has_linear: bool,
    probabilities: bool = True,
    metric: str = "micro-f1",
) -> DecisionPolicy:
    """Binary relevance's decision policy: a rule fitted on dev for each metric, `metric`'s the default.

    micro-F1's is the threshold with the best dev micro-F1 (`mlgen.eval.thresholds.tune`; one
    per label with `per_label`). With a linear-br ensemble, first its weights: every pair of
    `LINEAR_WEIGHTS` and `LINEAR_MIXES` (0 and 0, the network alone, first) is scored on dev
    with a global threshold cross-fitted over two halves of dev, as `fit_sequence` scores its
    marginal rules; the best is kept (ties: the first), and the dev scores of the network alone
    and of the best kept.

    Every other metric's rule scores the labels as micro-F1's does: a threshold cross-fitted for
    that metric (macro-F1: one per label, shrunk toward the global one by each of `SHRINKAGES`)
    and, for samples-F1, the expected-F1 set of labels taken as independent with Platt-scaled
    probabilities (`IndependentExpectedF1`); the best dev score of that metric wins.

    Args:
        ops: the dev documents' `ArrayOps`: the model's scores (`network`) and, with an
            ensemble, linear-br's `margins`.
        probabilities: the scores are probabilities (False: margins; Platt scaling then
            acts on the scores, not on their logit).
        metric: the metric whose rule is the default (`mlgen.config.DECISION_METRICS`).
    """
    y_true, missed_per_doc = dev_truth(vocab, dev)
    halves = thresholds.halves(len(dev))

    def scored(sets):
        return metrics.evaluate(dev.label_sets, sets, vocab.labels)

    def cross_fitted(scores, for_metric: str, shrinkage=None) -> dict:
        chosen = thresholds.cross_fit(scores, y_true, halves, always_top, missed_per_doc, for_metric, shrinkage)
        return scored(vocab.from_multi_hot(chosen))

    rule, dev_scores = Threshold(always_top=always_top), {}
    if has_linear:
        candidates = []
        for weight in (0.0, *LINEAR_WEIGHTS):
            for mix in (0.0, *LINEAR_MIXES):
                candidate = Threshold(linear_weight=weight, always_top=always_top, linear_mix=mix)
                candidates.append((cross_fitted(candidate.scores(ops), "micro-f1"), candidate))
        scores, rule = max(candidates, key=lambda c: c[0]["micro_f1"])
        dev_scores = {
            "network": {key: candidates[0][0][key] for key in DEV_SCORES},
            artifacts.LINEAR_BR: {key: scores[key] for key in DEV_SCORES},
        }
    label_scores = rule.scores(ops)
    threshold = thresholds.tune(label_scores, y_true, per_label, always_top, int(missed_per_doc.sum()))
    rules = {"micro-f1": dataclasses.replace(rule, threshold=_threshold(threshold))}
    decisions = {"micro-f1": (scores if has_linear else cross_fitted(label_scores, "micro-f1"), rules["micro-f1"])}
    for other in DECISION_METRICS:
        if other == "micro-f1":
            continue
        options = _cross_fitted_options(rule, label_scores, other, cross_fitted)
        if other == "samples-f1":
            x = ArrayOps.logit(label_scores) if probabilities else label_scores
            scale, shift = calibration.platt(x, y_true)
            independent = IndependentExpectedF1(
                rule.linear_weight, rule.linear_mix, scale, shift, always_top=always_top, logit=probabilities
            )
            options.append((scored(label_sets(vocab, independent.outputs(ops))), independent))
        decisions[other] = max(options, key=lambda option: metrics.gain(option[0], other))
        rules[other] = _tuned(decisions[other][1], ops, y_true, missed_per_doc, other, always_top)
    dev_scores.update(_metric_scores(decisions))
    return DecisionPolicy.fitted(rules, metric, dev_scores)


def _cross_fitted_options(rule: Rule, scores, metric: str, cross_fitted) -> list:
    """`rule` (a thresholded one) with its threshold cross-fitted for `metric`: `(dev scores,
    (rule, shrinkage))` for each of `SHRINKAGES` (macro-F1) or once."""
    shrinkages = SHRINKAGES if metric == "macro-f1" else (None,)
    return [(cross_fitted(scores, metric, shrinkage), (rule, shrinkage)) for shrinkage in shrinkages]


def _tuned(option, ops: ArrayOps, y_true, missed_per_doc, metric: str, always_top: bool) -> Rule:
    """The rule of a fit's option: a rule as it is, or `(rule, shrinkage)` with its threshold
    tuned for `metric` on the whole of dev."""
    if isinstance(option, Rule):
        return option
    rule, shrinkage = option
    threshold = thresholds.tune_for(rule.scores(ops), y_true, metric, always_top, missed_per_doc, shrinkage)
    return dataclasses.replace(rule, threshold=_threshold(threshold))


def _threshold(threshold):
    """A tuned threshold as a rule holds it: a float, or a tuple of one per label."""
    return tuple(float(t) for t in threshold) if np.ndim(threshold) else float(threshold)


def _metric_scores(decisions: dict) -> dict:
    """The dev scores of each metric's chosen rule: `DEV_SCORES` and the metric's own."""
    return {
        m: {key: scores[key] for key in dict.fromkeys((*DEV_SCORES, metrics.METRIC_SCORES[m]))}
        for m, (scores, _) in decisions.items()
    }
