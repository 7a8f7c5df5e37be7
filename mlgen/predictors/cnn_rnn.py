"""`cnn-rnn`: the label-sequence model, its decision rules and their fit on dev."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlgen import artifacts
from mlgen.config import ModelConfig, from_dict
from mlgen.data import Explanation, LabelledData, LabelVocabulary, check_texts
from mlgen.decisions import ArrayOps, DecisionPolicy, ExpectedF1, Marginal, Mode
from mlgen.decisions.fit import fit_sequence
from mlgen.errors import InputError, bad_value, option
from mlgen.eval import metrics
from mlgen.nn import inference, saving
from mlgen.nn.label_sequence import LabelSequenceModel
from mlgen.predictors import ensemble
from mlgen.predictors.base import check_count, version_tuple
from mlgen.predictors.neural import NeuralPredictor


class SequencePredictor(NeuralPredictor):
    """The CNN-RNN model: labels generated one at a time, greedy or beam search.

    Two decision rules turn the decoder into label sets (`mlgen.decisions`): the most
    probable sequence (`Mode`) and thresholded label scores from the beam (`Marginal`),
    fitted on dev by `fit_decision`; `decision` holds the fitted policy.

    Example:
        >>> clf = mlgen.load("runs/reuters21578")
        >>> clf.predict(["Wheat exports rose ..."])
        [['wheat', 'grain']]
    """

    network = LabelSequenceModel
    calibrate_each_epoch = False  # each try decodes the dev set
    decision_file = artifacts.DECISION
    decision_lead = "is not a decision rule mlgen wrote"
    # EOS logit biases `calibrate` tries, nearest to no change first (ties keep the earlier).
    EOS_BIASES = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, -2.0)
    # Label-prior weights `calibrate` tries, the training-time weight first.
    PRIOR_WEIGHTS = (1.0, 0.0, 0.5, 2.0, 3.0)
    # The decision rules a user may ask for by name (`decision=`).
    DECISIONS = (Mode.name, Marginal.name, ExpectedF1.name)
    # Beam size whose hypotheses the marginals are taken over (unless `beam_size` says more).
    MARGINAL_BEAM = 5
    # The first mlgen version that writes `decision.json` beside every cnn-rnn model (0.2.0 wrote it
    # only from the commit that fitted decision rules on, so a 0.2.0 folder may lack it).
    DECISION_SINCE = (0, 3)

    def __init__(self, model, vocab: LabelVocabulary, config: dict):
        self.model = model
        self.model_config = from_dict(ModelConfig, config.get("model", {}))
        super().__init__(vocab, config)

    def default_decision(self) -> DecisionPolicy:
        """The most probable sequence of the model's `beam_size`, until `calibrate` fits a policy."""
        return DecisionPolicy((Mode(beam_size=self.model_config.beam_size),))

    @classmethod
    def beam_limit(cls, num_labels: int) -> int:
        """The widest beam worth running over `num_labels` labels: a wider one finds nothing more
        (at least `MARGINAL_BEAM`, the beam the marginal rule is fitted with)."""
        return max(num_labels, cls.MARGINAL_BEAM)

    @classmethod
    def check_sizes(cls, model_config: ModelConfig, vocab: LabelVocabulary) -> None:
        limit = cls.beam_limit(vocab.num_labels)
        why = f" (the training data has {vocab.num_labels} labels: a wider beam finds nothing more)"
        check_count(model_config.beam_size, "beam_size", 1, limit, why)

    def rule(self, decision: str | None = None, beam_size: int | None = None, metric: str | None = None):
        """The fitted rule for `metric` or named `decision` (default: the policy's), searching with
        `beam_size` (a user's: from 1, or 2 for the rules over a beam's hypotheses, to `beam_limit`)
        instead of its own."""
        limit = self.beam_limit(self.vocab.num_labels)
        why = f" (this model has {self.vocab.num_labels} labels: a wider beam finds nothing more)"
        beam_size = check_count(beam_size, "beam_size", 1, limit, why)
        names = dict.fromkeys((*self.DECISIONS, *(rule.name for rule in self.decision.rules)))
        if decision is not None and decision not in names:
            raise bad_value("decision", decision, f"must be one of {', '.join(names)}")
        if decision is not None and metric is None and self.decision.get(decision) is None:
            raise InputError(
                f"{option('decision', decision)} needs a decision fitted on dev; this model was trained with "
                f"{option('decision', self.decision.default.name)}"
            )
        rule = super().rule(decision, metric=metric)
        if beam_size is None:
            return rule
        if not isinstance(rule, Mode) and beam_size < 2:
            takes = "its marginals over" if isinstance(rule, Marginal) else "its label sets from"
            raise InputError(
                f"{option('decision', rule.name)} takes {takes} a beam of at least 2, got "
                f"{option('beam_size', beam_size)}; pass {option('decision', 'mode')} for greedy search"
            )
        return dataclasses.replace(rule, beam_size=beam_size)

    def ranking_rule(self, rule):
        """The marginal rule ranks the labels: `rule` if it is one, else the fitted one, else the
        plain beam marginals at the mode's weight (one search feeds the mode and the ranking
        when their beams agree)."""
        if isinstance(rule, Marginal):
            return rule
        fitted = self.decision.get(Marginal.name)
        if fitted is not None:
            return fitted
        return Marginal(
            linear_weight=rule.linear_weight, beam_size=max(self.MARGINAL_BEAM, getattr(rule, "beam_size", 1))
        )

    def check_max_labels(self, max_labels) -> int | None:
        """`max_labels` (a user's, None for the model's), checked: from `min_labels` to the number of labels."""
        why = f" (this model has {self.vocab.num_labels} labels)"
        return check_count(max_labels, "max_labels", self.model.min_labels, self.vocab.num_labels, why)

    def calibrate(self, dev: LabelledData) -> None:
        """Tunes what decoding adds to the decoder's logits, then the decision rule, on dev micro-F1.

        - The label prior's weight (models trained with `label_loss_weight` > 0): the
          one of `PRIOR_WEIGHTS` with the best dev micro-F1.
        - Then, with `tune_eos_bias`, the EOS bias among `EOS_BIASES`: a negative bias
          makes the decoder stop later (more labels, more recall), a positive one sooner.
        - Then a decision rule for each metric and the linear-br ensemble's weights (`fit_decision`).
        """
        if self.model.label_head is not None:
            self._tune(self.model.label_prior_weight, self.PRIOR_WEIGHTS, dev)
        if self.model_config.tune_eos_bias:
            self._tune(self.model.eos_bias, self.EOS_BIASES, dev)
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

    def fit_decision(self, dev: LabelledData, decision: str | None = None) -> DecisionPolicy:
        """Fits on dev the decision policy predictions use, a rule for each metric, and keeps it in
        `decision` (`mlgen.decisions.fit.fit_sequence`: the mode of a `beam_size` search against the
        rules over the hypotheses of a beam of at least `MARGINAL_BEAM`, each with the linear-br
        ensemble's weights).

        `decision` (default: `ModelConfig.decision`): `"mode"`, `"marginal"` or `"auto"`.
        """
        decision = decision or self.model_config.decision
        mode_beam = self.model_config.beam_size
        marginal_beam = max(self.MARGINAL_BEAM, mode_beam)
        shared = ("head",) * (self.model.label_head is not None) + ("margins",) * (self.linear is not None)
        common = self.graph.parts(dev.texts, shared) if shared else {}

        def parts(weight: float) -> ArrayOps:
            wanted = []
            if decision != "marginal" or not weight:
                wanted.append(("sequence", mode_beam))
            if decision != "mode":
                if marginal_beam != mode_beam:
                    wanted.append(("sequence", marginal_beam))
                wanted += [("marginals", marginal_beam), ("hypotheses", marginal_beam)]
            computed = self.graph.parts(dev.texts, tuple(dict.fromkeys(wanted)), linear_weight=weight)

            def by(kind):
                return {(key[1], weight): value for key, value in computed.items() if key[0] == kind}

            return ArrayOps(
                margins=common.get("margins"),
                head=common.get("head"),
                marginals=by("marginals"),
                sequences=by("sequence"),
                hypotheses=by("hypotheses"),
                min_labels=self.model.min_labels,
                max_labels=self.graph.max_labels(None),
                num_labels=self.vocab.num_labels,
            )

        self.decision = fit_sequence(
            dev,
            self.vocab,
            parts,
            decision=decision,
            mode_beam=mode_beam,
            marginal_beam=marginal_beam,
            min_labels=self.model.min_labels,
            has_head=self.model.label_head is not None,
            has_linear=self.linear is not None,
            metric=self.decision_metric,
        )
        return self.decision

    def explain(self, text: str, beam_size: int | None = None) -> Explanation:
        """The predicted labels of `text` and the attention weights behind each one.

        Raises:
            InputError: if the model was trained without `--attention`.
        """
        if self.model.attention is None:
            raise InputError("explain needs a cnn-rnn model trained with --attention dot|general|concat")
        text = check_texts([text])[0]
        labels = self.predict([text], beam_size=beam_size, decision="mode")[0]  # in generation order
        return inference.explain(self.model, self.vocab, text, labels)

    def read_decision(self, folder: Path) -> DecisionPolicy:
        if not (folder / artifacts.DECISION).is_file():
            written = self.config.get("mlgen_version")
            if (version_tuple(written) or self.DECISION_SINCE) >= self.DECISION_SINCE:
                # Absent only from the folders of models trained before decision rules were fitted (mlgen
                # 0.2.0 and older): a newer folder without it would predict with another rule than it was
                # fitted with.
                raise artifacts.damaged(
                    folder,
                    artifacts.DECISION,
                    f"is missing: mlgen {written} writes it beside every cnn-rnn model (the decision rule fitted "
                    f"on dev), so the run folder is incomplete",
                )
            return self.default_decision()
        return super().read_decision(folder)

    def decision_limits(self) -> dict:
        return {**super().decision_limits(), "beam_limit": self.beam_limit(self.vocab.num_labels)}

    def legacy_decision(self, data: dict, damaged) -> dict:
        """`decision.json` of mlgen 0.2 and 0.3: one rule's numbers at the top level (the marginal
        rule's with a `threshold`), the mode searching with `config.json`'s beam."""
        lead = self.decision_lead
        rule = data.get("rule")
        if rule not in (Mode.name, Marginal.name):
            damaged(f'{lead} ("rule": {rule!r}, not one of mode, marginal)')
        weight = data.get("linear_weight", 0.0)
        rules = {Mode.name: {"linear_weight": weight, "beam_size": self.model_config.beam_size}}
        if "threshold" in data:
            if "beam_size" not in data:
                damaged(f'{lead} (the marginal rule without its "beam_size")')
            rules[Marginal.name] = {
                "linear_weight": weight,
                "head_weight": data.get("head_weight", 0.0),
                "linear_mix": data.get("linear_mix", 0.0),
                "threshold": data["threshold"],
                "beam_size": data["beam_size"],
            }
        elif rule == Marginal.name:
            damaged(f'{lead} (the marginal rule without its "threshold")')
        return {"rule": rule, "rules": rules, "dev_scores": data.get("dev_scores", {}), "chosen": data.get("chosen")}

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> SequencePredictor:
        beam_size = config.get("model", {}).get("beam_size", 1)
        if isinstance(beam_size, int) and beam_size > cls.beam_limit(vocab.num_labels):
            raise artifacts.damaged(
                folder,
                artifacts.CONFIG,
                f'has "beam_size": {beam_size} under "model", more than the model\'s {vocab.num_labels} labels '
                f"(at most {cls.beam_limit(vocab.num_labels)})",
            )
        linear = ensemble.read(folder, vocab, config)
        predictor = cls(saving.load_network(folder, config, vocab, LabelSequenceModel), vocab, config)
        predictor.linear = linear
        return predictor
