"""`cnn-rnn`: the label-sequence model, its decision rules and their fit on dev."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlgen import artifacts
from mlgen.config import ModelConfig, from_dict, save_json
from mlgen.data import Explanation, LabelledData, LabelVocabulary, Prediction, check_texts, scored_predictions
from mlgen.errors import InputError, bad_value, option
from mlgen.eval import metrics, thresholds
from mlgen.nn import saving
from mlgen.nn.inference import SequenceInference
from mlgen.nn.label_sequence import LabelSequenceModel
from mlgen.predictors import ensemble
from mlgen.predictors.base import (
    DEV_SCORES,
    check_count,
    check_dev_scores,
    check_fitted_number,
    dev_truth,
    version_tuple,
)
from mlgen.predictors.neural import NeuralPredictor


class SequencePredictor(NeuralPredictor):
    """The CNN-RNN model: labels generated one at a time, greedy or beam search.

    Two decision rules turn the decoder into label sets (`predict_scores`): the most
    probable sequence (`"mode"`) and thresholded label scores from the beam
    (`"marginal"`), fitted on dev by `fit_decision`; `decision` holds the fitted one.

    Example:
        >>> clf = mlgen.load("runs/reuters21578")
        >>> clf.predict(["Wheat exports rose ..."])
        [['wheat', 'grain']]
    """

    network = LabelSequenceModel
    calibrate_each_epoch = False  # each try decodes the dev set
    # EOS logit biases `calibrate` tries, nearest to no change first (ties keep the earlier).
    EOS_BIASES = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, -2.0)
    # Label-prior weights `calibrate` tries, the training-time weight first.
    PRIOR_WEIGHTS = (1.0, 0.0, 0.5, 2.0, 3.0)
    # The decision rules (`decision`): the most probable sequence, or thresholded beam marginals.
    DECISIONS = ("mode", "marginal")
    # Beam size whose hypotheses the marginals are taken over (unless `beam_size` says more).
    MARGINAL_BEAM = 5
    # Weights of the label head's probability in the marginal rule's scores that `fit_decision` tries.
    HEAD_WEIGHTS = (0.25, 0.5, 0.75, 1.0)
    # The first mlgen version that writes `decision.json` beside every cnn-rnn model (0.2.0 wrote it
    # only from the commit that fitted decision rules on, so a 0.2.0 folder may lack it).
    DECISION_SINCE = (0, 3)

    def __init__(self, model, vocab: LabelVocabulary, config: dict, decision: dict | None = None):
        super().__init__(vocab, config)
        self.model = model
        self.inference = SequenceInference(model, vocab)
        self.model_config = from_dict(ModelConfig, config.get("model", {}))
        # The fitted decision rule (`decision.json`): {"rule": "mode"} until `calibrate` fits one.
        self.decision = decision or {"rule": "mode"}

    @property
    def decision_rule(self) -> str:
        return self.decision["rule"]

    @classmethod
    def beam_limit(cls, num_labels: int) -> int:
        """The widest beam worth running over `num_labels` labels: a wider one finds nothing more
        (at least `MARGINAL_BEAM`, the beam the marginal rule is fitted with)."""
        return max(num_labels, cls.MARGINAL_BEAM)

    def _check_beam(self, beam_size) -> int:
        """`beam_size` (a user's), checked: a whole number from 1 to `beam_limit`."""
        limit = self.beam_limit(self.vocab.num_labels)
        why = f" (this model has {self.vocab.num_labels} labels: a wider beam finds nothing more)"
        return check_count(beam_size, "beam_size", 1, limit, why)

    def _check_max_labels(self, max_labels) -> int | None:
        """`max_labels` (a user's, None for the model's), checked: from `min_labels` to the number of labels."""
        why = f" (this model has {self.vocab.num_labels} labels)"
        return check_count(max_labels, "max_labels", self.model.min_labels, self.vocab.num_labels, why)

    @classmethod
    def check_sizes(cls, model_config: ModelConfig, vocab: LabelVocabulary) -> None:
        limit = cls.beam_limit(vocab.num_labels)
        why = f" (the training data has {vocab.num_labels} labels: a wider beam finds nothing more)"
        check_count(model_config.beam_size, "beam_size", 1, limit, why)

    @property
    def ensemble_weights(self) -> dict | None:
        if self.linear is None:
            return None
        return {key: self.decision.get(key, 0.0) for key in ("linear_weight", "linear_mix")}

    def calibrate(self, dev: LabelledData) -> None:
        """Tunes what decoding adds to the decoder's logits, then the decision rule, on dev micro-F1.

        - The label prior's weight (models trained with `label_loss_weight` > 0): the
          one of `PRIOR_WEIGHTS` with the best dev micro-F1.
        - Then, with `tune_eos_bias`, the EOS bias among `EOS_BIASES`: a negative bias
          makes the decoder stop later (more labels, more recall), a positive one sooner.
        - Then the decision rule and the linear-br ensemble's weights (`fit_decision`),
          unless `decision` is `"mode"` without an ensemble.
        """
        if self.model.label_head is not None:
            self._tune(self.model.label_prior_weight, self.PRIOR_WEIGHTS, dev)
        if self.model_config.tune_eos_bias:
            self._tune(self.model.eos_bias, self.EOS_BIASES, dev)
        if self.model_config.decision != "mode" or self.linear is not None:
            self.fit_decision(dev)

    def _tune(self, variable, values, dev: LabelledData) -> None:
        """Sets `variable` to the first of `values` with the best dev micro-F1."""
        best_f1, best_value = -1.0, values[0]
        for value in values:
            variable.assign(value)
            f1 = metrics.evaluate(dev.label_sets, self.predict(dev.texts, decision="mode"), self.labels)["micro_f1"]
            if f1 > best_f1:
                best_f1, best_value = f1, value
        variable.assign(best_value)

    def fit_decision(self, dev: LabelledData, decision: str | None = None) -> dict:
        """Fits on dev the decision rule, and the weights of the linear-br ensemble, that
        predictions use by default.

        The candidates, for each weight `linear_weight` of linear-br's margins added to
        every step's label logits (0, and with an ensemble each of `ensemble.LINEAR_WEIGHTS`):

        - `"mode"`: the most probable sequence;
        - `"marginal"`: each label scored by `(1 - h - m) * marginal + h * head + m *
          sigmoid(margin)`, its beam marginal (`SequenceInference.marginals`) mixed with the label
          head's probability (`h` in `HEAD_WEIGHTS`, models with a head) and linear-br's
          sigmoid (`m` in `ensemble.LINEAR_MIXES`, with an ensemble), the labels reaching a
          threshold predicted (at least `min_labels`). Each is scored with each half of
          dev thresholded by the threshold tuned on the other half
          (`mlgen.eval.thresholds.cross_fit`), so that a tuned rule is not favoured by having
          seen the documents it is scored on.

        `decision` (default: `ModelConfig.decision`) `"mode"` chooses among the mode
        candidates, `"marginal"` among the marginal ones, `"auto"` among both; the best
        dev micro-F1 wins, and ties keep the earlier candidate (the plain most probable
        sequence first). Returns (and keeps in `decision`) the rule with its weights and
        threshold, and the dev scores of the best candidate of each family
        (`dev_scores`: `"mode"`, the network's plain most probable sequence, always
        reported; `"marginal"`, its best marginal rule; `"linear-br"`, the best candidate
        with the ensemble), the winner's family under `"chosen"`.
        """
        y_true, missed_per_doc = dev_truth(self.vocab, dev)
        missed = int(missed_per_doc.sum())
        beam_size = max(self.MARGINAL_BEAM, self.model_config.beam_size)
        at_least = self.model.min_labels > 0
        halves = thresholds.halves(len(dev))
        margins = self.linear.margins(dev.texts) if self.linear is not None else None
        head = self.inference.head_probabilities(dev.texts) if self.model.label_head is not None else None
        rules = {"mode": ("mode",), "marginal": ("marginal",)}.get(
            decision or self.model_config.decision, self.DECISIONS
        )
        head_weights = (0.0, *(self.HEAD_WEIGHTS if head is not None else ()))
        linear_mixes = (0.0, *(ensemble.LINEAR_MIXES if margins is not None else ()))

        def scored(sets):
            return metrics.evaluate(dev.label_sets, sets, self.labels)

        candidates = []  # (dev scores, the rule and its weights)
        marginals = {}  # linear weight -> beam marginals (n_docs, num_labels)
        for linear_weight in (0.0, *(ensemble.LINEAR_WEIGHTS if margins is not None else ())):
            prior = linear_weight * margins if linear_weight else None
            if "mode" in rules or not linear_weight:  # the plain mode's dev scores are always reported
                predictions = self.inference.decode(dev.texts, self.model_config.beam_size, prior=prior)
                candidates.append(
                    (scored([p.labels for p in predictions]), {"rule": "mode", "linear_weight": linear_weight})
                )
            if "marginal" not in rules:
                continue
            marginals[linear_weight] = self.inference.marginals(dev.texts, beam_size, prior=prior)
            for head_weight in head_weights:
                for linear_mix in (m for m in linear_mixes if head_weight + m <= 1):
                    scores = ensemble.mixed_scores(marginals[linear_weight], head, margins, head_weight, linear_mix)
                    chosen = thresholds.cross_fit(scores, y_true, halves, at_least, missed_per_doc)
                    rule = dict(
                        rule="marginal", linear_weight=linear_weight, head_weight=head_weight, linear_mix=linear_mix
                    )
                    candidates.append((scored(self.vocab.from_multi_hot(chosen)), rule))
        eligible = [i for i, (_, rule) in enumerate(candidates) if rule["rule"] in rules]
        best = max(eligible, key=lambda i: candidates[i][0]["micro_f1"])  # ties: the first
        fitted = dict(candidates[best][1], beam_size=beam_size)
        marginal = [
            c for c in candidates if c[1]["rule"] == "marginal" and c[1]["linear_weight"] == fitted["linear_weight"]
        ]
        if marginal:  # the threshold of the best marginal rule at the chosen weight (what --decision marginal runs)
            rule = max(marginal, key=lambda c: c[0]["micro_f1"])[1]
            scores = ensemble.mixed_scores(
                marginals[rule["linear_weight"]], head, margins, rule["head_weight"], rule["linear_mix"]
            )
            fitted.update(
                rule,
                rule=fitted["rule"],
                threshold=thresholds.tune(scores, y_true, always_top=at_least, missed=missed),
            )
        families = {
            "mode": lambda r: r["rule"] == "mode" and not r["linear_weight"],
            "marginal": lambda r: r["rule"] == "marginal" and not (r["linear_weight"] or r["linear_mix"]),
            artifacts.LINEAR_BR: lambda r: r["linear_weight"] or r.get("linear_mix"),
        }
        fitted["dev_scores"] = {}
        for family, member in families.items():
            members = [c[0] for c in candidates if member(c[1])]
            if members:
                fitted["dev_scores"][family] = {
                    key: max(members, key=lambda s: s["micro_f1"])[key] for key in DEV_SCORES
                }
            if member(candidates[best][1]):
                fitted["chosen"] = family
        self.decision = fitted
        return fitted

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[Prediction]:
        """Per text its labels and their scores, by the decision rule.

        `"mode"`: the most probable sequence (greedy or beam search), labels in
        generation order, each with its probability at the step it was generated, and
        the sequence log-probability. `"marginal"`: the labels whose mixed score (see
        `fit_decision`) reaches the threshold fitted on dev, highest first, scored by it
        (`log_prob` None). With a linear-br ensemble, both rules decode with its margins,
        times the fitted `linear_weight`, added to the logits.

        Args:
            texts: raw documents.
            beam_size: the search's beam (default: the model's `beam_size`; for
                `"marginal"`, the beam the threshold was fitted with).
            max_labels: most labels per document (default: the model's `max_labels`).
            decision: `"mode"` or `"marginal"` (default: the rule fitted on dev).
        """
        texts = check_texts(texts)
        rule = self._rule(decision)
        max_labels = self._check_max_labels(max_labels)
        beam_size = self._check_beam(beam_size)
        margins = self.linear.margins(texts) if self._uses_linear(rule) else None
        if rule == "mode":
            linear_weight = self.decision.get("linear_weight", 0.0)
            prior = linear_weight * margins if linear_weight else None
            beam_size = self.model_config.beam_size if beam_size is None else beam_size
            return self.inference.decode(texts, beam_size=beam_size, max_labels=max_labels, prior=prior)
        beam_size = self.decision["beam_size"] if beam_size is None else beam_size
        if beam_size < 2:
            raise InputError(
                f"{option('decision', 'marginal')} takes its marginals over a beam of at least 2, got "
                f"{option('beam_size', beam_size)}; pass {option('decision', 'mode')} for greedy search"
            )
        scores = self._mixed_scores(texts, beam_size, margins)
        chosen = thresholds.apply(scores, self.decision["threshold"], always_top=self.model.min_labels > 0)
        limit = self.model.max_labels if max_labels is None else max_labels
        return scored_predictions(self.labels, scores, chosen, limit, self.model.min_labels)

    def serving(self, beam_size: int | None = None, decision: str | None = None):
        """See `Predictor.serving`; `decision` overrides the fitted rule, as in `predict_scores`."""
        from mlgen.nn import serving  # TensorFlow's SavedModel: only to export

        rule = self._rule(decision)
        beam_size = self._check_beam(beam_size)
        beam_size = self.model_config.beam_size if beam_size is None else beam_size
        margins = ensemble.serving_margins(self.linear, self._uses_linear(rule))
        return serving.sequence_module(self.inference, {**self.decision, "rule": rule}, beam_size, margins)

    def _rule(self, decision: str | None) -> str:
        """The decision rule to use: `decision`, or the one fitted on dev; an InputError for
        an unknown rule, or the marginal rule when none was fitted."""
        rule = self.decision["rule"] if decision is None else decision
        if rule not in self.DECISIONS:
            raise bad_value("decision", rule, f"must be one of {', '.join(self.DECISIONS)}")
        if rule == "marginal" and "threshold" not in self.decision:
            raise InputError(
                f"{option('decision', 'marginal')} needs a threshold fitted on dev; this model was trained with "
                f"{option('decision', 'mode')}"
            )
        return rule

    def _uses_linear(self, rule: str) -> bool:
        """Whether `rule` draws on the linear-br ensemble's margins: a weight on the logits, or
        (the marginal rule) a share of the scores."""
        weight, mix = self.decision.get("linear_weight", 0.0), self.decision.get("linear_mix", 0.0)
        return bool(weight or (rule == "marginal" and mix))

    def label_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Each label's score `(len(texts), num_labels)`, as the marginal rule scores it: the
        share of the beam's probability mass on sequences that hold the label (beam
        `decision["beam_size"]`, else `MARGINAL_BEAM`), mixed with the label head's and
        linear-br's probabilities by the shares fitted on dev (none before a marginal
        rule is fitted). In [0, 1]; a ranking of the labels, not calibrated probabilities."""
        texts = check_texts(texts)
        margins = self.linear.margins(texts) if self._uses_linear("marginal") else None
        beam_size = max(self.decision.get("beam_size", self.MARGINAL_BEAM), 2)
        return self._mixed_scores(texts, beam_size, margins)

    def _mixed_scores(self, texts, beam_size: int, margins) -> np.ndarray:
        linear_weight, linear_mix = self.decision.get("linear_weight", 0.0), self.decision.get("linear_mix", 0.0)
        prior = linear_weight * margins if linear_weight else None
        head_weight = self.decision.get("head_weight", 0.0)
        head = self.inference.head_probabilities(texts) if head_weight else None
        marginals = self.inference.marginals(texts, beam_size, prior=prior)
        return ensemble.mixed_scores(marginals, head, margins, head_weight, linear_mix if margins is not None else 0.0)

    def explain(self, text: str, beam_size: int | None = None) -> Explanation:
        """The predicted labels of `text` and the attention weights behind each one.

        Raises:
            InputError: if the model was trained without `--attention`.
        """
        if self.model.attention is None:
            raise InputError("explain needs a cnn-rnn model trained with --attention dot|general|concat")
        text = check_texts([text])[0]
        labels = self.predict([text], beam_size=beam_size, decision="mode")[0]  # in generation order
        return self.inference.explain(text, labels)

    def _write_model(self, folder: Path) -> None:
        super()._write_model(folder)
        save_json(self.decision, folder / artifacts.DECISION)

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> SequencePredictor:
        decision = artifacts.read_json(folder, artifacts.DECISION, required=False)
        written = config.get("mlgen_version")
        if decision is None and (version_tuple(written) or cls.DECISION_SINCE) >= cls.DECISION_SINCE:
            # Absent only from the folders of models trained before decision rules were fitted (mlgen 0.2.0
            # and older): a newer folder without it would predict with another rule than it was fitted with.
            raise artifacts.damaged(
                folder,
                artifacts.DECISION,
                f"is missing: mlgen {written} writes it beside every cnn-rnn model (the decision rule fitted on "
                f"dev), so the run folder is incomplete",
            )
        linear = ensemble.read(folder, vocab, config)
        if decision is not None:
            decision = cls._check_decision(folder, decision, vocab.num_labels, linear is not None)
        beam_size = config.get("model", {}).get("beam_size", 1)
        if isinstance(beam_size, int) and beam_size > cls.beam_limit(vocab.num_labels):
            raise artifacts.damaged(
                folder,
                artifacts.CONFIG,
                f'has "beam_size": {beam_size} under "model", more than the model\'s {vocab.num_labels} labels '
                f"(at most {cls.beam_limit(vocab.num_labels)})",
            )
        predictor = cls(saving.load_network(folder, config, vocab, LabelSequenceModel), vocab, config, decision)
        predictor.linear = linear
        return predictor

    @classmethod
    def _check_decision(cls, folder: Path, decision: dict, num_labels: int, has_linear: bool) -> dict:
        """`decision.json`'s rule with every number checked (finite, of its type, in its range), or
        an InputError naming the folder, the file and the key."""
        name, lead = artifacts.DECISION, "is not a decision rule mlgen wrote"

        def number(key, low, high, **options):
            return check_fitted_number(folder, name, key, decision[key], low, high, lead=lead, **options)

        rule = decision.get("rule")
        if rule not in cls.DECISIONS:
            raise artifacts.damaged(folder, name, f'{lead} ("rule": {rule!r}, not one of {", ".join(cls.DECISIONS)})')
        checked = dict(decision)
        for key, high in (("linear_weight", ensemble.MAX_LINEAR_WEIGHT), ("head_weight", 1), ("linear_mix", 1)):
            if key in decision:
                checked[key] = number(key, 0, high)
        if checked.get("head_weight", 0.0) + checked.get("linear_mix", 0.0) > 1 + 1e-9:
            raise artifacts.damaged(folder, name, f'{lead} ("head_weight" and "linear_mix" add up to more than 1)')
        if "threshold" in decision:  # on mixed scores from 0 to 1 (a cut above them all lies just over 1)
            checked["threshold"] = number("threshold", 0, 1, slack=1e-3)
        if "beam_size" in decision:  # the marginals need two hypotheses
            checked["beam_size"] = number(
                "beam_size", 2 if "threshold" in decision else 1, cls.beam_limit(num_labels), integer=True
            )
        elif rule == "marginal":
            raise artifacts.damaged(folder, name, f'{lead} (the marginal rule without its "beam_size")')
        if rule == "marginal" and "threshold" not in decision:
            raise artifacts.damaged(folder, name, f'{lead} (the marginal rule without its "threshold")')
        if "dev_scores" in decision:
            check_dev_scores(folder, name, decision["dev_scores"], lead)
        if not has_linear and (checked.get("linear_weight") or checked.get("linear_mix")):
            raise artifacts.damaged(folder, name, f"weighs a linear-br ensemble that {artifacts.CONFIG} lacks")
        return checked
