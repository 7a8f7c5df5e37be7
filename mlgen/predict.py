"""Trained models, restored from run folders, predicting label sets from raw text.

`Predictor` is the interface every model type shares; `SequencePredictor` decodes the
CNN-RNN model and `ScoringPredictor` thresholds the scores of binary relevance.
Nothing here imports TensorFlow until a Keras model is decoded or loaded.
"""

from __future__ import annotations

import dataclasses
import numbers
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit

from mlgen import __version__, artifacts, metrics, thresholds
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig, from_dict, save_json
from mlgen.data import LabelledData, check_texts
from mlgen.errors import InputError, first_line
from mlgen.vocab import BOS_ID, EOS_ID, NUM_SPECIAL, LabelVocabulary


@dataclasses.dataclass
class Explanation:
    """Where the decoder looked for each label it generated (`--attention` models).

    Attributes:
        tokens: the document's tokens as the model sees them (standardized, cut to
            `sequence_length`; `[UNK]` outside the text vocabulary).
        labels: the predicted labels, in generation order.
        weights: `(len(labels), len(tokens))`: row `i` is the attention paid to the
            window starting at each token when label `i` was chosen; each row sums to 1.
    """

    tokens: list[str]
    labels: list[str]
    weights: np.ndarray


@dataclasses.dataclass
class Prediction:
    """One document's decoded label sequence.

    Attributes:
        labels: the labels in generation order.
        scores: each label's score: for cnn-rnn its probability at the step it was
            generated (the `"mode"` decision) or its label score (`"marginal"`), for
            binary relevance its probability or margin.
        log_prob: log-probability of the whole sequence, EOS included (None for the
            marginal decision and for binary-relevance models, which score labels
            independently).
    """

    labels: list[str]
    scores: list[float]
    log_prob: float | None


# Tokens per compiled predict call. Short texts get large batches (they spread the decoding
# loop's per-step cost over more documents), long ones smaller (the CNN's feature maps stay
# in cache): 256 documents of 200 tokens were faster than 512 or 1,024 on Reuters, 2,048
# titles of 20 tokens faster than 256 on cooking_se.
PREDICT_TOKENS = 256 * 200


def predict_batch_size(sequence_length: int) -> int:
    """Documents per predict call for texts of `sequence_length` tokens (64 to 2,048)."""
    return max(64, min(2048, PREDICT_TOKENS // max(sequence_length, 1)))


def decode_texts(
    model,
    texts: Sequence[str],
    beam_size: int = 1,
    max_labels: int | None = None,
    batch_size: int | None = None,
    prior: np.ndarray | None = None,
) -> list[Prediction]:
    """Runs the model's compiled search over `texts` in batches. The one decoding path.

    Greedy search runs in two passes, because a batch's loop lasts as long as its longest
    label sequence while most documents stop after a label or two: first every document
    with at most `FIRST_PASS_LABELS` labels, then, for the few that reached that cap
    without choosing EOS themselves, the full search again. Greedy steps before the cap
    do not depend on it, so the result is the one-pass search's (up to float rounding
    across batch compositions). Beam search runs in one pass.

    Args:
        model: a `LabelSequenceModel`.
        texts: raw documents.
        beam_size: 1 for greedy search, more for beam search.
        max_labels: most labels per document (default: the model's).
        batch_size: documents per compiled call (default: `predict_batch_size`).
        prior: float `(len(texts), num_labels)` added to every step's label logits, or None.
    """
    max_labels = model.max_labels if max_labels is None else max_labels
    if beam_size > 1 or max_labels <= FIRST_PASS_LABELS or model.min_labels >= FIRST_PASS_LABELS:
        return _search_batches(model, texts, beam_size, max_labels, batch_size, prior)
    predictions = _search_batches(model, texts, 1, FIRST_PASS_LABELS, batch_size, prior)
    capped = [i for i, p in enumerate(predictions) if len(p.labels) == FIRST_PASS_LABELS]
    if capped:
        again = _search_batches(
            model, [texts[i] for i in capped], 1, max_labels, batch_size, None if prior is None else prior[capped]
        )
        for i, prediction in zip(capped, again):
            predictions[i] = prediction
    return predictions


# Labels the first greedy pass allows (see `decode_texts`).
FIRST_PASS_LABELS = 3


def _search_batches(model, texts, beam_size, max_labels, batch_size, prior=None) -> list[Prediction]:
    """One compiled search (`LabelSequenceModel.generate_function`) per batch of `texts`."""
    names = model.labels
    predictions = []
    for ids, probs, log_prob in _generate(model, texts, batch_size, prior, beam_size, max_labels):
        # A label is an id >= NUM_SPECIAL before the row's EOS (PAD follows EOS).
        keep = (ids >= NUM_SPECIAL) & (np.cumsum(ids == EOS_ID, axis=1) == 0)
        for row_ids, row_probs, row_keep, row_log_prob in zip(ids, probs, keep, log_prob.tolist()):
            predictions.append(
                Prediction(
                    labels=[names[i - NUM_SPECIAL] for i in row_ids[row_keep].tolist()],
                    scores=row_probs[row_keep].tolist(),
                    log_prob=row_log_prob,
                )
            )
    return predictions


def _generate(model, texts, batch_size, prior, *settings, **options):
    """Yields the numpy outputs of the compiled search (`LabelSequenceModel.generate_function`
    with `settings` and `options`) for each batch of `texts` in turn."""
    import tensorflow as tf

    batch_size = batch_size or predict_batch_size(model.sequence_length)
    generate = model.generate_function(*settings, **options)
    for start in range(0, len(texts), batch_size):
        batch = [str(t) for t in texts[start : start + batch_size]]
        batch_prior = np.zeros((len(batch), len(model.labels))) if prior is None else prior[start : start + batch_size]
        yield tuple(x.numpy() for x in generate(tf.constant(batch, tf.string), tf.constant(batch_prior, tf.float32)))


def label_marginals(
    model, texts: Sequence[str], beam_size: int, max_labels: int | None = None, batch_size=None, prior=None
):
    """Each label's share of the beam's probability mass, `(len(texts), num_labels)`.

    A beam search keeps `beam_size` label sequences per text; each label scores the
    summed probability (normalised over the beam) of the hypotheses that hold it: an
    estimate of P(label in the set) from the sequence model. `prior`: as for `decode_texts`.
    """
    batch_size = batch_size or predict_batch_size(model.sequence_length)
    marginals = np.zeros((len(texts), len(model.labels)), np.float32)
    batches = _generate(model, texts, batch_size, prior, beam_size, max_labels, return_beams=True)
    for start, (ids, _, scores) in zip(range(0, len(texts), batch_size), batches):  # (b, beam, steps), (b, beam)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        emitted = (ids >= NUM_SPECIAL) & (np.cumsum(ids == EOS_ID, axis=2) == 0)
        rows, beams, steps = np.nonzero(emitted)
        np.add.at(marginals, (start + rows, ids[rows, beams, steps] - NUM_SPECIAL), weights[rows, beams])
    return marginals


def label_head_probabilities(model, texts: Sequence[str], batch_size=None) -> np.ndarray:
    """The label head's sigmoid per label `(len(texts), num_labels)` (models with `label_loss_weight`)."""
    import tensorflow as tf

    batch_size = batch_size or predict_batch_size(model.sequence_length)
    probabilities = model.label_probabilities_function()
    chunks = [
        probabilities(tf.constant([str(t) for t in texts[i : i + batch_size]], tf.string)).numpy()
        for i in range(0, len(texts), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.labels)), np.float32)


def scored_predictions(labels, scores: np.ndarray, chosen: np.ndarray, max_labels=None, min_labels: int = 0):
    """`Prediction`s of labels chosen from per-label scores, highest score first.

    Args:
        labels: the label names, one per column.
        scores: `(n_docs, num_labels)`; chosen: bool, the same shape.
        max_labels: keep at most this many per document (None: all chosen).
        min_labels: add the best unchosen labels up to this many.
    """
    predictions = []
    for row_scores, row_chosen in zip(scores, chosen):
        columns = np.flatnonzero(row_chosen)
        columns = columns[np.argsort(-row_scores[columns], kind="stable")]
        if len(columns) < min_labels:
            rest = np.flatnonzero(~row_chosen)
            rest = rest[np.argsort(-row_scores[rest], kind="stable")][: min_labels - len(columns)]
            columns = np.concatenate([columns, rest])
        columns = columns[:max_labels]
        predictions.append(
            Prediction(
                labels=[labels[j] for j in columns], scores=[float(row_scores[j]) for j in columns], log_prob=None
            )
        )
    return predictions


def dev_truth(vocab: LabelVocabulary, dev: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    """Dev gold as a multi-hot `(n_docs, num_labels)` and, per document `(n_docs,)`, its
    gold labels outside the vocabulary (misses no decision can avoid), for tuning thresholds."""
    known = vocab.drop_unknown(dev.label_sets)
    missed = np.array([len(set(s)) - len(set(k)) for s, k in zip(dev.label_sets, known)], dtype=int)
    return vocab.to_multi_hot(known), missed


# The linear-br ensemble (`ModelConfig.ensemble`), fitted on dev after training: the weights of
# linear-br's margins added to the network's label logits, and the shares of its sigmoid mixed
# into the label scores, that are tried besides 0 (0 and 0: the network alone).
LINEAR_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
LINEAR_MIXES = (0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8)


class Predictor:
    """A trained model with its label vocabulary and config: texts in, label sets out.

    The common interface of every model type (`cnn-rnn`, `cnn-br`, `linear-br`);
    `mlgen.load` returns the right subclass for a run folder.

    Attributes:
        vocab: the `LabelVocabulary` (fixes the label columns).
        config: everything in `config.json` (`model_type` first).
        metrics, history: dev scores and timings; per-epoch logs.
    """

    model_type = ""
    # Whether training calls `calibrate` after every epoch (cheap) or only at the end.
    calibrate_each_epoch = True

    def __init__(self, vocab: LabelVocabulary, config: dict):
        self.vocab = vocab
        self.config = config
        self.metrics: dict = {}
        self.history: dict = {}
        # The linear-br model beside the network (`ModelConfig.ensemble`), or None.
        self.linear = None

    @property
    def labels(self) -> list[str]:
        return self.vocab.labels

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[Prediction]:
        """Per text: its labels (most confident or first generated first) and their scores."""
        raise NotImplementedError

    def predict(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[list[str]]:
        """The label set of each text."""
        return [p.labels for p in self.predict_scores(texts, beam_size, max_labels, decision)]

    @property
    def decision_rule(self) -> str:
        """What turns scores into label sets by default (reported by `evaluate` and `compare`)."""
        return "threshold"

    @property
    def ensemble_weights(self) -> dict | None:
        """The fitted weights of the linear-br ensemble (`linear_weight`: on its margins
        added to the logits; `linear_mix`: its sigmoid's share of the label scores), or
        None without one."""
        return None

    def calibrate(self, dev: LabelledData) -> None:
        """Fits what is tuned on dev data after (or during) training; nothing by default."""

    def write(self, folder) -> None:
        """Writes the run files into an existing `folder` (see `mlgen.artifacts`)."""
        folder = Path(folder)
        self._write_model(folder)
        if self.linear is not None:
            self.linear._write_model(folder)
        self.vocab.save(folder / artifacts.LABEL_VOCAB)
        save_json(self.config, folder / artifacts.CONFIG)
        save_json(self.metrics, folder / artifacts.METRICS)
        save_json(self.history, folder / artifacts.HISTORY)

    def save(self, folder) -> None:
        """Saves the run folder atomically: a failure leaves any previous folder intact."""
        with artifacts.atomic_dir(folder) as staging:
            self.write(staging)

    @classmethod
    def load(cls, folder) -> Predictor:
        """Restores a run folder of this model type written by `save` or `mlgen train`.

        Raises:
            InputError: naming the folder and the file at fault when the folder is
                incomplete or damaged.
        """
        folder = artifacts.check_run_dir(folder)
        config = read_config(folder)
        predictor = cls._read_model(folder, read_vocabulary(folder), config)
        predictor.metrics = artifacts.read_json(folder, artifacts.METRICS, required=False) or {}
        predictor.history = artifacts.read_json(folder, artifacts.HISTORY, required=False) or {}
        return predictor

    def _write_model(self, folder: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> Predictor:
        raise NotImplementedError


class SequencePredictor(Predictor):
    """The CNN-RNN model: labels generated one at a time, greedy or beam search.

    Two decision rules turn the decoder into label sets (`predict_scores`): the most
    probable sequence (`"mode"`) and thresholded label scores from the beam
    (`"marginal"`), fitted on dev by `fit_decision`; `decision` holds the fitted one.

    Example:
        >>> clf = mlgen.load("runs/reuters21578")
        >>> clf.predict(["Wheat exports rose ..."])
        [['wheat', 'grain']]
    """

    model_type = "cnn-rnn"
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
    # The dev scores `fit_decision` keeps of each rule.
    DECISION_SCORES = ("micro_f1", "macro_f1", "subset_accuracy", "micro_precision", "micro_recall")

    def __init__(self, model, vocab: LabelVocabulary, config: dict, decision: dict | None = None):
        super().__init__(vocab, config)
        self.model = model
        self.model_config = from_dict(ModelConfig, config.get("model", {}))
        # The fitted decision rule (`decision.json`): {"rule": "mode"} until `calibrate` fits one.
        self.decision = decision or {"rule": "mode"}

    @property
    def decision_rule(self) -> str:
        return self.decision["rule"]

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
        every step's label logits (0, and with an ensemble each of `LINEAR_WEIGHTS`):

        - `"mode"`: the most probable sequence;
        - `"marginal"`: each label scored by `(1 - h - m) * marginal + h * head + m *
          sigmoid(margin)`, its beam marginal (`label_marginals`) mixed with the label
          head's probability (`h` in `HEAD_WEIGHTS`, models with a head) and linear-br's
          sigmoid (`m` in `LINEAR_MIXES`, with an ensemble), the labels reaching a
          threshold predicted (at least `min_labels`). Each is scored with each half of
          dev thresholded by the threshold tuned on the other half
          (`mlgen.thresholds.cross_fit`), so that a tuned rule is not favoured by having
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
        head = label_head_probabilities(self.model, dev.texts) if self.model.label_head is not None else None
        rules = {"mode": ("mode",), "marginal": ("marginal",)}.get(
            decision or self.model_config.decision, self.DECISIONS
        )
        head_weights = (0.0, *(self.HEAD_WEIGHTS if head is not None else ()))
        linear_mixes = (0.0, *(LINEAR_MIXES if margins is not None else ()))

        def scored(sets):
            return metrics.evaluate(dev.label_sets, sets, self.labels)

        candidates = []  # (dev scores, the rule and its weights)
        marginals = {}  # linear weight -> beam marginals (n_docs, num_labels)
        for linear_weight in (0.0, *(LINEAR_WEIGHTS if margins is not None else ())):
            prior = linear_weight * margins if linear_weight else None
            if "mode" in rules or not linear_weight:  # the plain mode's dev scores are always reported
                predictions = decode_texts(self.model, dev.texts, self.model_config.beam_size, prior=prior)
                candidates.append(
                    (scored([p.labels for p in predictions]), {"rule": "mode", "linear_weight": linear_weight})
                )
            if "marginal" not in rules:
                continue
            marginals[linear_weight] = label_marginals(self.model, dev.texts, beam_size, prior=prior)
            for head_weight in head_weights:
                for linear_mix in (m for m in linear_mixes if head_weight + m <= 1):
                    scores = _mixed_scores(marginals[linear_weight], head, margins, head_weight, linear_mix)
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
            scores = _mixed_scores(
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
            "linear-br": lambda r: r["linear_weight"] or r.get("linear_mix"),
        }
        fitted["dev_scores"] = {}
        for family, member in families.items():
            members = [c[0] for c in candidates if member(c[1])]
            if members:
                fitted["dev_scores"][family] = {
                    key: max(members, key=lambda s: s["micro_f1"])[key] for key in self.DECISION_SCORES
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
        rule = self.decision["rule"] if decision is None else decision
        if rule not in self.DECISIONS:
            raise InputError(f"--decision must be one of {', '.join(self.DECISIONS)}, got {rule!r}")
        max_labels = check_count(max_labels, "--max-labels", self.model.min_labels)
        linear_weight, linear_mix = self.decision.get("linear_weight", 0.0), self.decision.get("linear_mix", 0.0)
        margins = self.linear.margins(texts) if linear_weight or (rule == "marginal" and linear_mix) else None
        prior = linear_weight * margins if linear_weight else None
        if rule == "mode":
            beam_size = check_count(self.model_config.beam_size if beam_size is None else beam_size, "--beam-size", 1)
            return decode_texts(self.model, texts, beam_size=beam_size, max_labels=max_labels, prior=prior)
        if "threshold" not in self.decision:
            raise InputError(
                "--decision marginal needs a threshold fitted on dev; this model was trained with --decision mode"
            )
        beam_size = check_count(self.decision["beam_size"] if beam_size is None else beam_size, "--beam-size", 1)
        if beam_size < 2:
            raise InputError(
                f"--decision marginal takes its marginals over a beam of at least 2, got --beam-size {beam_size}; "
                f"pass --decision mode for greedy search"
            )
        head_weight = self.decision.get("head_weight", 0.0)
        head = label_head_probabilities(self.model, texts) if head_weight else None
        scores = _mixed_scores(
            label_marginals(self.model, texts, beam_size, prior=prior), head, margins, head_weight, linear_mix
        )
        chosen = thresholds.apply(scores, self.decision["threshold"], always_top=self.model.min_labels > 0)
        limit = self.model.max_labels if max_labels is None else max_labels
        return scored_predictions(self.labels, scores, chosen, limit, self.model.min_labels)

    def explain(self, text: str, beam_size: int | None = None) -> Explanation:
        """The predicted labels of `text` and the attention weights behind each one.

        Raises:
            InputError: if the model was trained without `--attention`.
        """
        if self.model.attention is None:
            raise InputError("explain needs a cnn-rnn model trained with --attention dot|general|concat")
        text = check_texts([text])[0]
        labels = self.predict([text], beam_size=beam_size, decision="mode")[0]  # in generation order
        token_ids = np.asarray(self.model.text_vectorizer(np.array([text])))  # (1, sequence_length)
        length = int(np.count_nonzero(token_ids[0]))
        vocabulary = self.model.text_vectorizer.get_vocabulary()
        decoder_input = np.array([[BOS_ID, *(self.vocab.id(label) for label in labels[:-1])]], dtype="int32")
        weights = np.asarray(self.model.attention_weights(token_ids, decoder_input))  # (1, steps, sequence_length)
        return Explanation(
            tokens=[vocabulary[i] for i in token_ids[0, :length]],
            labels=labels,
            weights=weights[0, : len(labels), :length],
        )

    def _write_model(self, folder: Path) -> None:
        self.model.save(folder / artifacts.MODEL)
        save_json(self.decision, folder / artifacts.DECISION)

    @classmethod
    def _read_model(cls, folder: Path, vocab: LabelVocabulary, config: dict) -> SequencePredictor:
        from mlgen.model import LabelSequenceModel

        decision = artifacts.read_json(folder, artifacts.DECISION, required=False)  # absent before mlgen 0.3
        linear = read_ensemble(folder, vocab, config)
        if decision is not None and (
            decision.get("rule") not in cls.DECISIONS
            or ("threshold" in decision and not _is_number(decision["threshold"]))
            or ("beam_size" in decision and not isinstance(decision["beam_size"], int))
            or not _is_weight(decision.get("head_weight", 0.0), 1)
            or not _is_weight(decision.get("linear_mix", 0.0), 1)
            or not _is_weight(decision.get("linear_weight", 0.0))
        ):
            raise artifacts.damaged(folder, artifacts.DECISION, "is not a decision rule mlgen wrote")
        if decision is not None and linear is None and (decision.get("linear_weight") or decision.get("linear_mix")):
            raise artifacts.damaged(
                folder, artifacts.DECISION, f"weighs a linear-br ensemble that {artifacts.CONFIG} lacks"
            )
        predictor = cls(load_keras(folder, config, vocab, LabelSequenceModel), vocab, config, decision)
        predictor.linear = linear
        return predictor


class ScoringPredictor(Predictor):
    """Binary relevance: one score per label, a label predicted when it reaches the threshold.

    Subclasses give `scores(texts) -> (n_docs, num_labels)`. The threshold (one, or one
    per label) is tuned on dev by `calibrate` and saved in `thresholds.json`, with the
    weights of a linear-br ensemble (cnn-br with `ensemble="linear-br"`).

    Attributes:
        threshold: a float or a float array `(num_labels,)`.
        per_label: `calibrate` tunes one threshold per label.
        always_top: a document nothing reaches gets its top-scoring label.
        linear_weight, linear_mix: with `linear`, the label scores are
            `(1 - linear_mix) * sigmoid(logit(p) + linear_weight * margin) + linear_mix
            * sigmoid(margin)` of the network's probability `p` and linear-br's margin.
        dev_scores: dev scores of the network alone and with the ensemble, as
            `calibrate` compared them.
    """

    def __init__(self, vocab: LabelVocabulary, config: dict, threshold=0.0):
        super().__init__(vocab, config)
        baseline = from_dict(BaselineConfig, config.get("baseline", {}))
        self.per_label = baseline.threshold == "per-label"
        self.always_top = baseline.always_top
        self.threshold = threshold
        self.linear_weight = self.linear_mix = 0.0
        self.dev_scores: dict = {}

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """The model's own per-label scores `(len(texts), num_labels)`; larger means more likely."""
        raise NotImplementedError

    @property
    def ensemble_weights(self) -> dict | None:
        if self.linear is None:
            return None
        return {"linear_weight": self.linear_weight, "linear_mix": self.linear_mix}

    def label_scores(self, texts: Sequence[str]) -> np.ndarray:
        """The scores the threshold applies to `(len(texts), num_labels)`: `scores`, combined
        with the linear-br ensemble's margins when there is one."""
        scores = self.scores(texts)
        if self.linear is None or not (self.linear_weight or self.linear_mix):
            return scores
        return _fused_scores(scores, self.linear.margins(texts), self.linear_weight, self.linear_mix)

    def calibrate(self, dev: LabelledData) -> None:
        """Tunes the threshold for the best dev micro-F1 (`mlgen.thresholds.tune`).

        With a linear-br ensemble, first its weights: every pair of `LINEAR_WEIGHTS` and
        `LINEAR_MIXES` (0 and 0, the network alone, first) is scored on dev with a global
        threshold cross-fitted over two halves of dev (`mlgen.thresholds.cross_fit`), as
        cnn-rnn's `fit_decision` scores its rules; the best is kept (ties: the first).
        """
        y_true, missed_per_doc = dev_truth(self.vocab, dev)
        missed = int(missed_per_doc.sum())
        scores = self.scores(dev.texts)
        if self.linear is not None:
            halves, margins = thresholds.halves(len(dev)), self.linear.margins(dev.texts)
            candidates = []
            for weight in (0.0, *LINEAR_WEIGHTS):
                for mix in (0.0, *LINEAR_MIXES):
                    fused = _fused_scores(scores, margins, weight, mix)
                    chosen = thresholds.cross_fit(fused, y_true, halves, self.always_top, missed_per_doc)
                    candidates.append(
                        (metrics.evaluate(dev.label_sets, self.vocab.from_multi_hot(chosen), self.labels), weight, mix)
                    )
            best = max(candidates, key=lambda c: c[0]["micro_f1"])
            _, self.linear_weight, self.linear_mix = best
            self.dev_scores = {
                "network": {key: candidates[0][0][key] for key in SequencePredictor.DECISION_SCORES},
                "linear-br": {key: best[0][key] for key in SequencePredictor.DECISION_SCORES},
            }
            if self.linear_weight or self.linear_mix:
                scores = _fused_scores(scores, margins, self.linear_weight, self.linear_mix)
        self.threshold = thresholds.tune(scores, y_true, self.per_label, self.always_top, missed)

    def predict_scores(
        self,
        texts: Sequence[str],
        beam_size: int | None = None,
        max_labels: int | None = None,
        decision: str | None = None,
    ) -> list[Prediction]:
        """Labels that reach the threshold, highest score first, with their scores.

        `log_prob` is None: binary relevance scores each label on its own.
        """
        if beam_size not in (None, 1):
            raise InputError(f"--beam-size applies to cnn-rnn models; this is a {self.model_type} model")
        if decision not in (None, "threshold"):
            raise InputError(f"--decision applies to cnn-rnn models; this is a {self.model_type} model")
        max_labels = check_count(max_labels, "--max-labels", 1)
        texts = check_texts(texts)
        if not texts:
            return []
        scores = self.label_scores(texts)
        return scored_predictions(
            self.labels, scores, thresholds.apply(scores, self.threshold, self.always_top), max_labels
        )

    def write(self, folder) -> None:
        super().write(folder)
        calibrated = {"threshold": np.asarray(self.threshold).tolist()}
        if self.linear is not None:
            calibrated.update(linear_weight=self.linear_weight, linear_mix=self.linear_mix, dev_scores=self.dev_scores)
        save_json(calibrated, Path(folder) / artifacts.THRESHOLDS)

    @classmethod
    def load(cls, folder) -> ScoringPredictor:
        predictor = super().load(folder)
        calibrated = artifacts.read_json(folder, artifacts.THRESHOLDS)
        threshold = calibrated.get("threshold")
        if isinstance(threshold, list):
            threshold = np.asarray(threshold, dtype=object)
            if threshold.shape != (predictor.vocab.num_labels,) or not all(_is_number(t) for t in threshold):
                raise artifacts.damaged(
                    folder, artifacts.THRESHOLDS, f"needs {predictor.vocab.num_labels} numbers, one per label"
                )
            threshold = threshold.astype(np.float64)
        elif not _is_number(threshold):
            raise artifacts.damaged(folder, artifacts.THRESHOLDS, 'needs a number under "threshold"')
        predictor.threshold = threshold
        if predictor.linear is not None:
            weight, mix = calibrated.get("linear_weight"), calibrated.get("linear_mix")
            if not (_is_weight(weight) and _is_weight(mix, 1)):
                raise artifacts.damaged(
                    folder, artifacts.THRESHOLDS, "needs the linear-br ensemble's linear_weight and linear_mix"
                )
            predictor.linear_weight, predictor.linear_mix = float(weight), float(mix)
            predictor.dev_scores = calibrated.get("dev_scores", {})
        return predictor


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _is_weight(value, most: float = np.inf) -> bool:
    return _is_number(value) and 0 <= value <= most


def _mixed_scores(marginals, head, margins, head_weight: float, linear_mix: float) -> np.ndarray:
    """`(1 - head_weight - linear_mix) * marginals + head_weight * head + linear_mix *
    sigmoid(margins)`, all `(n_docs, num_labels)` (see `SequencePredictor.fit_decision`)."""
    scores = (1.0 - head_weight - linear_mix) * marginals
    if head_weight:
        scores = scores + head_weight * head
    if linear_mix:
        scores = scores + linear_mix * expit(margins)
    return scores


def _fused_scores(probabilities, margins, weight: float, mix: float) -> np.ndarray:
    """`(1 - mix) * sigmoid(logit(probabilities) + weight * margins) + mix * sigmoid(margins)`,
    all `(n_docs, num_labels)` (see `ScoringPredictor`)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return (1.0 - mix) * expit(np.log(p) - np.log1p(-p) + weight * margins) + mix * expit(margins)


def read_ensemble(folder: Path, vocab: LabelVocabulary, config: dict):
    """The linear-br model of a run folder trained with `ensemble="linear-br"` (its
    `linear.npz`), or None (run folders of mlgen 0.3 and earlier have no ensemble)."""
    if config.get("model", {}).get("ensemble") != "linear-br" or config.get("model_type") == "linear-br":
        return None
    from mlgen.baselines.linear import LinearBRPredictor

    return LinearBRPredictor._read_model(folder, vocab, config)


def check_count(value, flag: str, minimum: int) -> int | None:
    """`value` as an int (None stays None), or an InputError unless a whole number >= `minimum`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{flag} must be a whole number, got {value!r}")
    if value < minimum:
        raise InputError(f"{flag} must be at least {minimum}, got {value}")
    return int(value)


def read_config(folder: Path) -> dict:
    """`config.json` of a run folder, checked: every section an object whose values
    make valid configs.

    Raises:
        InputError: naming the folder and `config.json` when it is not.
    """
    config = artifacts.read_json(folder, artifacts.CONFIG)
    if not isinstance(config.get("model_type", "cnn-rnn"), str):
        raise artifacts.damaged(folder, artifacts.CONFIG, f"has model_type {config['model_type']!r}, not a name")
    sections = {"model": ModelConfig, "train": TrainConfig, "baseline": BaselineConfig, "data": None}
    for key, cls in sections.items():
        section = config.get(key, {})
        if not isinstance(section, dict):
            raise artifacts.damaged(folder, artifacts.CONFIG, f"has a {type(section).__name__} under {key!r}")
        try:
            if cls is not None:
                from_dict(cls, section)
        except InputError as err:
            raise artifacts.damaged(folder, artifacts.CONFIG, f"has a bad {key!r} value ({err})") from None
    return config


def read_vocabulary(folder: Path) -> LabelVocabulary:
    """`label_vocab.json` of a run folder, or an InputError naming it."""
    data = artifacts.read_json(folder, artifacts.LABEL_VOCAB)
    try:
        return LabelVocabulary.from_dict(data)
    except (InputError, KeyError, TypeError) as err:
        raise artifacts.damaged(
            folder, artifacts.LABEL_VOCAB, f"is not a label vocabulary ({first_line(err)})"
        ) from None


def model_file(folder: Path, name: str, config: dict) -> Path:
    """`folder/name`, the model file of `config`'s model type, or an InputError that says
    which model file the folder holds instead."""
    path = folder / name
    if path.is_file():
        return path
    other = {artifacts.MODEL: artifacts.LINEAR, artifacts.LINEAR: artifacts.MODEL}[name]
    instead = (
        f"; it holds {other} instead: is its {artifacts.CONFIG} from another run?" if (folder / other).is_file() else ""
    )
    model_type = config.get("model_type", "cnn-rnn")
    raise artifacts.damaged(folder, name, f"is missing (model type {model_type}){instead}")


def load_keras(folder: Path, config: dict, vocab: LabelVocabulary, expected: type):
    """The `.keras` model of a run folder, loaded in safe mode with mlgen's layers registered.

    Raises:
        InputError: naming the folder and `model.keras` when the file is missing or
            damaged, was written by another mlgen, holds another kind of model than
            `expected` (the class `config.json`'s model type needs), or labels other
            than `vocab`'s.
    """
    import keras

    import mlgen.baselines.cnn_br  # noqa: F401  registers the custom layers and models
    import mlgen.model  # noqa: F401

    path = model_file(folder, artifacts.MODEL, config)
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()  # reads every member: a flipped bit fails its CRC
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError) as err:
        raise artifacts.damaged(folder, artifacts.MODEL, f"is damaged: not a readable .keras archive ({err})") from None
    if broken is not None:
        raise artifacts.damaged(folder, artifacts.MODEL, f"is damaged: its member {broken} fails the CRC check")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001  a user's file: every failure becomes one line
        written = config.get("mlgen_version")
        if written != __version__:
            raise InputError(
                f"{path}: written by mlgen {written}, cannot be loaded by mlgen {__version__} "
                f"({first_line(err)}); retrain with this version"
            ) from None
        raise artifacts.damaged(folder, artifacts.MODEL, f"cannot be loaded ({first_line(err)})") from None
    if not isinstance(model, expected):
        raise artifacts.damaged(
            folder,
            artifacts.CONFIG,
            f"says model type {config.get('model_type', 'cnn-rnn')}, but {artifacts.MODEL} holds a "
            f"{type(model).__name__}",
        )
    if list(model.labels) != vocab.labels:
        raise artifacts.damaged(
            folder,
            artifacts.LABEL_VOCAB,
            f"does not match {artifacts.MODEL} ({vocab.num_labels} labels against the model's {len(model.labels)})",
        )
    return model
