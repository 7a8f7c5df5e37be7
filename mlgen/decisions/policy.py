"""The decision policy a model was fitted with: its rules, saved in a versioned file and checked on load.

A run folder's decision file (`decision.json` for cnn-rnn, `thresholds.json` for binary
relevance) holds, from format 3 on, the rule fitted on dev for each metric
(`mlgen.config.DECISION_METRICS`), the default metric's first:

    {"format": 3, "metric": "micro-f1",
     "decisions": {"micro-f1": {"rule": "marginal", "linear_weight": 0.5, "head_weight": 0.0,
                                "linear_mix": 0.2, "threshold": 0.31, "beam_size": 5},
                   "subset-accuracy": {"rule": "mode", "linear_weight": 0.5, "beam_size": 5}, ...},
     "dev_scores": {...}, "chosen": "linear-br",
     "calibration": {"method": "sigmoid", "scale": 1.3, "shift": -0.8, "knots": [], "values": [], "margins": false}}

`"metric"` names the decision predictions use by default; the others are asked for by metric
(`metric=`), or by rule name (`decision=`: the first rule of that name, the default metric's
first). Files of format 2 (mlgen 0.4: `"rule"` and `"rules"` by name, fitted on micro-F1) and
format 1 (mlgen 0.2 and 0.3: the rule's numbers at the top level, read by a converter each model
type gives) are still read. `"calibration"` is the map from the default rule's label scores to
the probabilities `predict_proba` gives (`mlgen.decisions.calibration`); a file without one
(written before mlgen fitted it) gives the scores as they are. `read` is the one place a
decision file is checked.
"""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import DECISION_METRICS, save_json
from mlgen.decisions.calibration import Calibration
from mlgen.decisions.rules import RULES, Rule
from mlgen.errors import InputError, as_json, bad_value, option

FORMAT = 3
# The metric every decision of a format 1 or 2 file was fitted for (and a policy's default rule, when it
# names no metric).
LEGACY_METRIC = "micro-f1"


@dataclasses.dataclass(frozen=True)
class DecisionPolicy:
    """The rules a model decides by, fitted on dev.

    Attributes:
        rules: the rules, the default first; each can be asked for by name (`decision=`), the
            first of a name answering.
        dev_scores: dev scores of the candidates the fit compared (reported, never used to
            predict): by family (`"mode"`, `"marginal"`, `"network"`, `"linear-br"`) or by
            metric (the rule chosen for it), a dict of score key -> score.
        chosen: the family of the default rule among `dev_scores`' (None when not recorded).
        metrics: the rule fitted for each metric (`mlgen.config.DECISION_METRICS`), the
            default's first; each is one of `rules` (none given: the default rule, for
            `LEGACY_METRIC`).
        calibration: the map from the default rule's ranking scores (`label_scores`) to
            probabilities, fitted on dev; None: the scores are given as they are.
    """

    rules: tuple[Rule, ...]
    dev_scores: dict = dataclasses.field(default_factory=dict)
    chosen: str | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    calibration: Calibration | None = None

    def __post_init__(self):
        if not self.metrics:
            object.__setattr__(self, "metrics", {LEGACY_METRIC: self.rules[0]})

    @classmethod
    def fitted(cls, decisions: dict, metric: str, dev_scores=None, chosen=None, others=()) -> DecisionPolicy:
        """The policy of the rule `decisions[m]` fitted for each metric `m`, `metric`'s the default,
        and `others`, rules asked for by name only."""
        if metric not in decisions:
            raise ValueError(f"no decision fitted for {metric}")
        metrics = {metric: decisions[metric], **{m: r for m, r in decisions.items() if m != metric}}
        return cls(tuple(dict.fromkeys((*metrics.values(), *others))), dev_scores or {}, chosen, metrics)

    @property
    def default(self) -> Rule:
        return self.rules[0]

    @property
    def metric(self) -> str:
        """The metric the default rule was fitted for."""
        return next(iter(self.metrics))

    def get(self, name: str | None = None) -> Rule | None:
        """The rule named `name` (None: the default), or None if the policy has none of that name."""
        if name is None:
            return self.default
        return next((rule for rule in self.rules if rule.name == name), None)

    def rule(self, name: str | None = None, metric: str | None = None) -> Rule:
        """The rule fitted for `metric` (None: the default), or the first named `name`; an
        InputError that says what the model has when it has no such rule."""
        if metric is not None:
            if metric not in DECISION_METRICS:
                raise bad_value("metric", metric, f"must be one of {', '.join(DECISION_METRICS)}")
            rule = self.metrics.get(metric)
            if rule is None:
                have = ", ".join(option("metric", m) for m in self.metrics) or "none"
                raise InputError(f"{option('metric', metric)} was not fitted on dev for this model; it has {have}")
            if name is not None and rule.name != name:
                raise InputError(
                    f"{option('metric', metric)} decides by {option('decision', rule.name)} in this model, not "
                    f"{option('decision', name)}: pass one of them"
                )
            return rule
        rule = self.get(name)
        if rule is not None:
            return rule
        if name not in RULES:
            raise bad_value("decision", name, f"must be one of {', '.join(r.name for r in self.rules)}")
        have = ", ".join(option("decision", n) for n in dict.fromkeys(r.name for r in self.rules))
        raise InputError(f"{option('decision', name)} was not fitted on dev for this model; it has {have}")

    def metric_of(self, rule: Rule) -> str | None:
        """The first metric `rule` was fitted for (the default's first), or None."""
        return next((m for m, r in self.metrics.items() if r == rule), None)

    def to_json(self) -> dict:
        """What the decision file holds (module docstring); rules fitted for no metric (a format 2
        file's other rule) are kept by name under `"rules"`."""
        others = [rule for rule in self.rules if rule not in self.metrics.values()]
        return {
            "format": FORMAT,
            "metric": self.metric,
            "decisions": {metric: describe(rule) for metric, rule in self.metrics.items()},
            **({"rules": {rule.name: _fields(rule) for rule in others}} if others else {}),
            "dev_scores": self.dev_scores,
            **({"chosen": self.chosen} if self.chosen is not None else {}),
            **({"calibration": _fields(self.calibration)} if self.calibration is not None else {}),
        }


def describe(rule: Rule) -> dict:
    """A rule's name and numbers, as `evaluate --json` and `info` report them."""
    return {"rule": rule.name, **_fields(rule)}


def _fields(rule: Rule) -> dict:
    values = dataclasses.asdict(rule)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


def save(policy: DecisionPolicy, path) -> None:
    save_json(policy.to_json(), Path(path))


def read(folder, name: str, data: dict, limits: dict, legacy=None, lead: str = "") -> DecisionPolicy:
    """The decision policy in `data`, the JSON of `folder`'s decision file `name`, every number checked.

    Args:
        limits: the model's bounds that fields name (`"beam_limit"`, `"score_low"`,
            `"score_high"`; None: unbounded), `"num_labels"`, `"has_linear"` (whether the
            folder holds a linear-br ensemble a rule may weigh) and `"margins"` (whether the
            network's scores are margins rather than probabilities).
        legacy: `legacy(data, damaged) -> data` rewrites a format 1 file as format 2 (None:
            refused); `damaged(problem)` raises the InputError for a problem it finds.
        lead: begins each problem (`"is not a decision rule mlgen wrote"`).

    Raises:
        InputError: naming the folder, the file and the key at fault.
    """

    def fail(problem: str, verb: str = "has"):
        said = problem if verb == "has" else f"{verb} {problem}"  # "is not ... (\"key\": 3, not ...)"
        raise artifacts.damaged(folder, name, f"{lead} ({said})" if lead else f"{verb} {problem}")

    flat = "format" not in data
    if flat:
        if legacy is None:
            fail('no "format" version')
        data = {**legacy(data, lambda problem: _raise(artifacts.damaged(folder, name, problem))), "format": 2}
    elif data["format"] not in (2, FORMAT):
        raise artifacts.damaged(
            folder, name, f"has format {as_json(data['format'])}; this mlgen reads formats 1 to {FORMAT}: upgrade mlgen"
        )

    def checked(rule_name, values, key: str) -> Rule:
        if rule_name not in RULES:
            fail(f"a rule {as_json(rule_name)}, not one of {', '.join(RULES)}")
        rule = _rule(RULES[rule_name], values, key, limits, fail)
        if rule.uses_linear and not limits.get("has_linear"):
            raise artifacts.damaged(folder, name, f"weighs a linear-br ensemble that {artifacts.CONFIG} lacks")
        return rule

    named = data.get("rules", {})
    if not isinstance(named, dict) or (data["format"] == 2 and not named):
        fail('no "rules"')
    metrics = {}
    if data["format"] == 2:
        default = data.get("rule")
        if default not in named:
            fail(f'"rule": {as_json(default)}, not one of its rules ({", ".join(named)})')
        order = (default, *(r for r in named if r != default))
        rules = [checked(r, named[r], "" if flat else f"rules.{r}.") for r in order]
        metrics = {LEGACY_METRIC: rules[0]}
    else:
        decisions = data.get("decisions")
        if not isinstance(decisions, dict) or not decisions:
            fail('no "decisions"')
        metric = data.get("metric")
        if metric not in decisions:
            fail(f'"metric": {as_json(metric)}, not one of its decisions ({", ".join(decisions)})')
        for key in (metric, *(m for m in decisions if m != metric)):
            if key not in DECISION_METRICS:
                fail(f"a decision for {as_json(key)}, not one of {', '.join(DECISION_METRICS)}")
            values = decisions[key]
            if not isinstance(values, dict):
                fail(f'a {type(values).__name__} under "decisions.{key}", not an object')
            values = dict(values)
            metrics[key] = checked(values.pop("rule", None), values, f"decisions.{key}.")
        rules = [*dict.fromkeys(metrics.values()), *(checked(r, v, f"rules.{r}.") for r, v in named.items())]
    dev_scores = _dev_scores(data.get("dev_scores", {}), fail)
    chosen = data.get("chosen")
    if chosen is not None and not isinstance(chosen, str):
        fail(f'"chosen": {as_json(chosen)}, not a name')
    calibration = data.get("calibration")
    if calibration is not None:
        calibration = _rule(Calibration, calibration, "calibration.", limits, fail)
        margins = not rules[0].gives_probabilities(limits.get("margins", False))
        if calibration.margins != margins:
            said = "margins" if margins else "probabilities"
            fail(f'"calibration.margins": {as_json(calibration.margins)}, though its default rule scores by {said}')
    return DecisionPolicy(tuple(dict.fromkeys(rules)), dev_scores, chosen, metrics, calibration)


def _raise(error: Exception):
    raise error


def _rule(cls, values, prefix: str, limits: dict, fail) -> Rule:
    """`cls` built from a decision file's `values`, each field within its bounds."""
    if not isinstance(values, dict):
        fail(f'a {type(values).__name__} under "{prefix.rstrip(".") or cls.name}", not an object')
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        fail(f'"{prefix}{unknown[0]}", which {cls.name} rules do not have')
    kwargs = {}
    for field in fields.values():
        key = prefix + field.name
        if field.name not in values:
            fail(f'no "{key}" for its {cls.name} rule')
        kwargs[field.name] = _value(values[field.name], key, field.metadata, limits, fail)
    rule = cls(**kwargs)
    problem = rule.problem()
    if problem:
        fail(problem)
    return rule


def _value(value, key: str, metadata, limits: dict, fail):
    kind = metadata.get("kind", "number")
    low, high = (limits.get(b) if isinstance(b, str) else b for b in (metadata.get("low"), metadata.get("high")))
    if kind == "bool":
        if not isinstance(value, bool):
            fail(f'"{key}": {as_json(value)}, not true or false')
        return value
    if kind == "text":
        if not isinstance(value, str):
            fail(f'"{key}": {as_json(value)}, not a name')
        return value
    if kind == "numbers":
        if not isinstance(value, list):
            fail(f'"{key}": {as_json(value)}, not a list of numbers')
        return tuple(_number(v, f"{key}[{i}]", low, high, False, fail, slack=False) for i, v in enumerate(value))
    if kind == "threshold" and isinstance(value, list):
        if len(value) != limits["num_labels"]:
            fail(f'{limits["num_labels"]} numbers, one per label, under "{key}"', verb="needs")
        return tuple(_number(v, f"{key}[{i}]", low, high, False, fail) for i, v in enumerate(value))
    return _number(value, key, low, high, kind == "count", fail)


def _number(value, key, low, high, integer: bool, fail, slack: bool = True):
    """`value` as a float (an int with `integer`), or `fail` unless a finite number of that type
    from `low` to `high` (with `slack`, a cut just above every score up to `high` is allowed:
    `high` + 1e-3)."""
    ok = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    ok = ok and not isinstance(value, bool) and bool(np.isfinite(value))
    slack = 0.0 if integer or not slack else 1e-3 * (high is not None)
    if ok and ((low is not None and value < low) or (high is not None and value > high + slack)):
        ok = False
    if not ok:
        kind = "a whole number" if integer else "a finite number"
        if low is not None and high is not None:
            kind += f" from {low:g} to {high:g}"
        elif low is not None:
            kind += f" of at least {low:g}"
        fail(f'"{key}": {as_json(value)}, not {kind}')
    return int(value) if integer else float(value)


def _dev_scores(value, fail) -> dict:
    """The `dev_scores` of a decision file (reported, never used to predict), checked: candidates
    to scores from 0 to 1."""
    if not isinstance(value, dict):
        fail(f'a {type(value).__name__} under "dev_scores", not an object')
    for family, scores in value.items():
        if not isinstance(scores, dict):
            fail(f'a {type(scores).__name__} under "dev_scores.{family}"')
        for key, score in scores.items():
            _number(score, f"dev_scores.{family}.{key}", 0, 1, False, fail)
    return value
