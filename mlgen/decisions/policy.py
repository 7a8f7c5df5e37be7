"""The decision policy a model was fitted with: its rules, saved in a versioned file and checked on load.

A run folder's decision file (`decision.json` for cnn-rnn, `thresholds.json` for binary
relevance) holds, from format 2 on:

    {"format": 2, "rule": "marginal",
     "rules": {"mode": {"linear_weight": 0.5, "beam_size": 1},
               "marginal": {"linear_weight": 0.5, "head_weight": 0.0, "linear_mix": 0.2,
                            "threshold": 0.31, "beam_size": 5}},
     "dev_scores": {...}, "chosen": "linear-br"}

`"rule"` names the rule predictions use by default; the others can be asked for by name
(`decision=`). Files of format 1 (mlgen 0.2 and 0.3: the rule's numbers at the top level) are
read by a converter each model type gives. `read` is the one place a decision file is checked.
"""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import save_json
from mlgen.decisions.rules import RULES, Rule
from mlgen.errors import InputError, as_json, bad_value, option

FORMAT = 2


@dataclasses.dataclass(frozen=True)
class DecisionPolicy:
    """The rules a model decides by, fitted on dev.

    Attributes:
        rules: the rules, the default first; at most one of each name.
        dev_scores: dev scores of the candidates the fit compared (reported, never used to
            predict): by family (`"mode"`, `"marginal"`, `"network"`, `"linear-br"`), a dict of
            metric -> score.
        chosen: the family of the default rule among `dev_scores`' (None when not recorded).
    """

    rules: tuple[Rule, ...]
    dev_scores: dict = dataclasses.field(default_factory=dict)
    chosen: str | None = None

    @property
    def default(self) -> Rule:
        return self.rules[0]

    def get(self, name: str | None = None) -> Rule | None:
        """The rule named `name` (None: the default), or None if the policy has none of that name."""
        if name is None:
            return self.default
        return next((rule for rule in self.rules if rule.name == name), None)

    def rule(self, name: str | None = None) -> Rule:
        """`get(name)`, or an InputError that says which rules the model has."""
        rule = self.get(name)
        if rule is not None:
            return rule
        if name not in RULES:
            raise bad_value("decision", name, f"must be one of {', '.join(r.name for r in self.rules)}")
        have = ", ".join(option("decision", r.name) for r in self.rules)
        raise InputError(f"{option('decision', name)} was not fitted on dev for this model; it has {have}")

    def to_json(self) -> dict:
        """What the decision file holds (module docstring)."""
        return {
            "format": FORMAT,
            "rule": self.default.name,
            "rules": {rule.name: _fields(rule) for rule in self.rules},
            "dev_scores": self.dev_scores,
            **({"chosen": self.chosen} if self.chosen is not None else {}),
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
            `"score_high"`; None: unbounded), `"num_labels"`, and `"has_linear"` (whether the
            folder holds a linear-br ensemble a rule may weigh).
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
        data = legacy(data, lambda problem: _raise(artifacts.damaged(folder, name, problem)))
    elif data["format"] != FORMAT:
        raise artifacts.damaged(
            folder, name, f"has format {as_json(data['format'])}; this mlgen reads format {FORMAT}: upgrade mlgen"
        )
    rules = data.get("rules")
    if not isinstance(rules, dict) or not rules:
        fail('no "rules"')
    default = data.get("rule")
    if default not in rules:
        fail(f'"rule": {as_json(default)}, not one of its rules ({", ".join(rules)})')
    checked = []
    for rule_name in (default, *(r for r in rules if r != default)):
        if rule_name not in RULES:
            fail(f"a rule {as_json(rule_name)}, not one of {', '.join(RULES)}")
        prefix = "" if flat else f"rules.{rule_name}."
        rule = _rule(RULES[rule_name], rules[rule_name], prefix, limits, fail)
        if rule.uses_linear and not limits.get("has_linear"):
            raise artifacts.damaged(folder, name, f"weighs a linear-br ensemble that {artifacts.CONFIG} lacks")
        checked.append(rule)
    dev_scores = _dev_scores(data.get("dev_scores", {}), fail)
    chosen = data.get("chosen")
    if chosen is not None and not isinstance(chosen, str):
        fail(f'"chosen": {as_json(chosen)}, not a name')
    return DecisionPolicy(tuple(checked), dev_scores, chosen)


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
    if kind == "threshold" and isinstance(value, list):
        if len(value) != limits["num_labels"]:
            fail(f'{limits["num_labels"]} numbers, one per label, under "{key}"', verb="needs")
        return tuple(_number(v, f"{key}[{i}]", low, high, False, fail) for i, v in enumerate(value))
    return _number(value, key, low, high, kind == "count", fail)


def _number(value, key, low, high, integer: bool, fail):
    """`value` as a float (an int with `integer`), or `fail` unless a finite number of that type
    from `low` to `high` (a cut just above every score up to `high` is allowed: `high` + 1e-3)."""
    ok = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
    ok = ok and not isinstance(value, bool) and bool(np.isfinite(value))
    slack = 0.0 if integer else 1e-3 * (high is not None)
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
