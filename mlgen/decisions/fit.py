"""Fitting decision rules on dev: each candidate rule scored from one pass of the network.

`fit_sequence` chooses cnn-rnn's rule (the mode or the marginal rule, with the linear-br
ensemble's weights); `fit_threshold` binary relevance's threshold (and its ensemble's
weights). Both take `ArrayOps` of the dev documents, so a candidate is a `Rule` and its
scores are computed by the very code that predicts with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from mlgen import artifacts
from mlgen.data import LabelledData, LabelVocabulary
from mlgen.decisions.policy import DecisionPolicy
from mlgen.decisions.rules import ArrayOps, Marginal, Mode, Threshold
from mlgen.eval import metrics, thresholds

# The weights of linear-br's margins added to the network's label logits, and the shares of
# its sigmoid mixed into the label scores, that are tried besides 0.
LINEAR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LINEAR_MIXES = (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8)
# Weights of the label head's probability in the marginal rule's scores that are tried besides 0.
HEAD_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
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
) -> DecisionPolicy:
    """cnn-rnn's decision policy, fitted on dev micro-F1.

    The candidates, for each weight `linear_weight` of linear-br's margins added to every
    step's label logits (0, and with an ensemble each of `LINEAR_WEIGHTS`): the most probable
    sequence (`Mode`, a `mode_beam` search), and `Marginal` rules over a `marginal_beam` beam
    with each head weight (`HEAD_WEIGHTS`, models with a head) and share of linear-br's sigmoid
    (`LINEAR_MIXES`, with an ensemble). A marginal candidate is scored with each half of dev
    thresholded by the threshold tuned on the other half (`mlgen.eval.thresholds.cross_fit`),
    so that a tuned rule is not favoured by having seen the documents it is scored on.

    Args:
        parts: `parts(linear_weight)`: the dev documents' `ArrayOps` at that weight, with the
            sequences of `mode_beam` and the marginals of `marginal_beam`.
        decision: `"mode"` or `"marginal"` chooses among that rule's candidates, `"auto"` among
            both; the best dev micro-F1 wins, ties keep the earlier (the plain mode first).

    Returns:
        The winner as the default rule, with the other rule at the winner's `linear_weight`
        (the marginal one with its threshold tuned on the whole dev set), and the dev scores of
        each family's best candidate (`"mode"`: the network's plain most probable sequence,
        always reported; `"marginal"`: its best marginal rule; `"linear-br"`: the best with the
        ensemble), the winner's family as `chosen`.
    """
    y_true, missed_per_doc = dev_truth(vocab, dev)
    halves = thresholds.halves(len(dev))
    wanted = {"mode": ("mode",), "marginal": ("marginal",)}.get(decision, ("mode", "marginal"))
    head_weights = (0.0, *(HEAD_WEIGHTS if has_head else ()))
    linear_mixes = (0.0, *(LINEAR_MIXES if has_linear else ()))

    def scored(sets):
        return metrics.evaluate(dev.label_sets, sets, vocab.labels)

    candidates = []  # (dev scores, rule)

    def best_of(candidates):  # the eligible rule with the best dev micro-F1 (ties: the first), or None
        eligible = [i for i, (_, rule) in enumerate(candidates) if rule.name in wanted]
        return candidates[max(eligible, key=lambda i: candidates[i][0]["micro_f1"])][1] if eligible else None

    ops_at = {}  # linear weight -> ArrayOps, kept for the best weight so far only (each holds dev-sized arrays)
    for weight in (0.0, *(LINEAR_WEIGHTS if has_linear else ())):
        leader = best_of(candidates)
        ops_at = {w: o for w, o in ops_at.items() if leader is not None and w == leader.linear_weight}
        ops = ops_at[weight] = parts(weight)
        if "mode" in wanted or not weight:  # the plain mode's dev scores are always reported
            rule = Mode(linear_weight=weight, beam_size=mode_beam)
            candidates.append((scored(label_sets(vocab, rule.outputs(ops))), rule))
        if "marginal" not in wanted:
            continue
        for head_weight in head_weights:
            for linear_mix in (m for m in linear_mixes if head_weight + m <= 1):
                rule = Marginal(weight, head_weight, linear_mix, beam_size=marginal_beam)
                chosen = thresholds.cross_fit(rule.scores(ops), y_true, halves, min_labels > 0, missed_per_doc)
                candidates.append((scored(vocab.from_multi_hot(chosen)), rule))
    best = best_of(candidates)
    rules = {"mode": Mode(linear_weight=best.linear_weight, beam_size=mode_beam)}
    marginal = [(s, r) for s, r in candidates if r.name == "marginal" and r.linear_weight == best.linear_weight]
    if marginal:  # the best marginal rule at the chosen weight, its threshold tuned on all of dev
        rule = max(marginal, key=lambda c: c[0]["micro_f1"])[1]
        scores = rule.scores(ops_at[rule.linear_weight])
        threshold = thresholds.tune(scores, y_true, always_top=min_labels > 0, missed=int(missed_per_doc.sum()))
        rules["marginal"] = dataclasses.replace(rule, threshold=threshold)
    families = {
        "mode": lambda r: r.name == "mode" and not r.linear_weight,
        "marginal": lambda r: r.name == "marginal" and not r.uses_linear,
        artifacts.LINEAR_BR: lambda r: r.uses_linear,
    }
    dev_scores, chosen = {}, None
    for family, member in families.items():
        members = [s for s, r in candidates if member(r)]
        if members:
            dev_scores[family] = {key: max(members, key=lambda s: s["micro_f1"])[key] for key in DEV_SCORES}
        if member(best):
            chosen = family
    default = rules.pop(best.name)
    return DecisionPolicy((default, *rules.values()), dev_scores, chosen)


def fit_threshold(
    dev: LabelledData, vocab: LabelVocabulary, ops: ArrayOps, *, per_label: bool, always_top: bool, has_linear: bool
) -> DecisionPolicy:
    """Binary relevance's decision policy: the threshold with the best dev micro-F1
    (`mlgen.eval.thresholds.tune`; one per label with `per_label`).

    With a linear-br ensemble, first its weights: every pair of `LINEAR_WEIGHTS` and
    `LINEAR_MIXES` (0 and 0, the network alone, first) is scored on dev with a global threshold
    cross-fitted over two halves of dev, as `fit_sequence` scores its marginal rules; the best
    is kept (ties: the first), and the dev scores of the network alone and of the best kept.

    Args:
        ops: the dev documents' `ArrayOps`: the model's scores (`network`) and, with an
            ensemble, linear-br's `margins`.
    """
    y_true, missed_per_doc = dev_truth(vocab, dev)
    rule, dev_scores = Threshold(always_top=always_top), {}
    if has_linear:
        halves = thresholds.halves(len(dev))
        candidates = []
        for weight in (0.0, *LINEAR_WEIGHTS):
            for mix in (0.0, *LINEAR_MIXES):
                candidate = Threshold(linear_weight=weight, always_top=always_top, linear_mix=mix)
                chosen = thresholds.cross_fit(candidate.scores(ops), y_true, halves, always_top, missed_per_doc)
                candidates.append(
                    (metrics.evaluate(dev.label_sets, vocab.from_multi_hot(chosen), vocab.labels), candidate)
                )
        scores, rule = max(candidates, key=lambda c: c[0]["micro_f1"])
        dev_scores = {
            "network": {key: candidates[0][0][key] for key in DEV_SCORES},
            artifacts.LINEAR_BR: {key: scores[key] for key in DEV_SCORES},
        }
    threshold = thresholds.tune(rule.scores(ops), y_true, per_label, always_top, int(missed_per_doc.sum()))
    threshold = tuple(float(t) for t in threshold) if per_label else float(threshold)
    return DecisionPolicy((dataclasses.replace(rule, threshold=threshold),), dev_scores)
