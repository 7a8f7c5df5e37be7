"""Decisions: what turns a model's outputs into label sets.

`rules` holds the rules, one frozen dataclass each, written once against an `ops` backend
(TensorFlow in the compiled prediction graph, NumPy when fitting and for linear-br);
`policy` the rule fitted for each metric that a run folder's decision file holds, checked on
load; `fit` fits them on dev; `expected_f1` (the expected-F1 maximiser) is what the set rules
compute with; `calibration` the map, fitted on dev and kept in the same file, that turns label
scores into the probabilities `predict_proba` gives (and Platt scaling, which the independent
expected-F1 rule uses). Nothing here imports TensorFlow.
"""

from mlgen.decisions.policy import FORMAT, DecisionPolicy
from mlgen.decisions.rules import (
    RULES,
    ArrayOps,
    ExpectedF1,
    IndependentExpectedF1,
    Marginal,
    Mode,
    Rule,
    Threshold,
    register,
)

__all__ = [
    "FORMAT",
    "RULES",
    "ArrayOps",
    "DecisionPolicy",
    "ExpectedF1",
    "IndependentExpectedF1",
    "Marginal",
    "Mode",
    "Rule",
    "Threshold",
    "register",
]
