"""Hyperparameters as dataclasses, saved as `config.json` beside the model.

Each field's metadata holds its CLI help (and choices), so `add_arguments` turns a
config class into `mlgen train` flags (`max_tokens` -> `--max-tokens`) and
`from_args` reads them back: defaults and their valid ranges live here and only here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import numbers
import types
import typing
from pathlib import Path

from mlgen.errors import InputError, bad_value, option

# Bounds of the sizes a user or a run folder's file gives, far above any useful value and
# below what would exhaust memory: the text vocabulary, tokens per document, a layer's width
# (embeddings, filters, units), stacked cells, labels per document (and the beam), and the
# numbers in the token embedding table (4 GB of float32).
MAX_TOKENS = 5_000_000
MAX_SEQUENCE_LENGTH = 100_000
MAX_WIDTH = 8192
MAX_LAYERS = 64
MAX_LABELS = 100_000
MAX_EMBEDDING = 1_000_000_000
# The metrics a decision can be fitted for (`TrainConfig.metric`, `--metric`); `mlgen.eval.metrics.METRIC_SCORES`
# names each one's score.
DECISION_METRICS = ("micro-f1", "macro-f1", "samples-f1", "subset-accuracy", "hamming")


def _field(default, help: str, choices=None, minimum=None, maximum=None, metavar=None):
    """A config field; `minimum`/`maximum` bound numbers (inclusive), checked by `_validate`."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


def _validate(config) -> None:
    """Raises InputError naming the flag of the first value of the wrong type or out of range.

    Numbers of other numeric types (NumPy's, from a parameter grid) become `int` or
    `float`, so that the config saves as JSON.
    """
    hints = _hints(type(config))
    for field in dataclasses.fields(config):
        value, meta = getattr(config, field.name), field.metadata
        given = value  # as the user wrote it, for messages (`C=-1`, not `C=-1.0`)
        kind = _base_type(hints[field.name])
        if not (value is None and type(None) in typing.get_args(hints[field.name])):
            value = _coerce(value, kind, field.name)
            object.__setattr__(config, field.name, value)
        values = value if isinstance(value, tuple) else (value,)
        if meta["choices"] and value not in meta["choices"]:
            raise bad_value(field.name, given, f"must be one of {', '.join(meta['choices'])}")
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise bad_value(field.name, given, "must be a finite number")
            if meta["minimum"] is not None and (not isinstance(v, (int, float)) or v < meta["minimum"]):
                raise bad_value(field.name, given, f"must be at least {meta['minimum']}")
            if meta["maximum"] is not None and (not isinstance(v, (int, float)) or v > meta["maximum"]):
                raise bad_value(field.name, given, f"must be at most {meta['maximum']}")


def _coerce(value, kind, name: str):
    """`value` as a `kind` (int, float, bool, str, or a tuple of ints), or an InputError."""

    def whole(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if kind is tuple and isinstance(value, (tuple, list)) and value and all(whole(v) for v in value):
        return tuple(int(v) for v in value)
    if kind is int and whole(value):
        return int(value)
    if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if kind in (bool, str) and isinstance(value, kind):
        return value
    names = {
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        str: "a name",
        tuple: "one or more whole numbers",
    }
    raise bad_value(name, value, f"must be {names[kind]}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks, their training and their decoding. See `mlgen.nn.label_sequence.LabelSequenceModel`
    and, for what it trains on, `mlgen.nn.targets.SequenceTargets`.

    Defaults were chosen on dev splits (Reuters-21578: held out of its training data;
    cooking_se: its bundled dev split), never on test; `experiments/README.md` has the runs.
    """

    max_tokens: int = _field(
        20000, "text vocabulary size (most frequent training tokens)", minimum=3, maximum=MAX_TOKENS
    )
    sequence_length: int = _field(
        0,
        "tokens per document, longer ones cut, shorter padded (0: the 99th percentile of the training texts' word "
        "counts, at most 200)",
        minimum=0,
        maximum=MAX_SEQUENCE_LENGTH,
    )
    embedding_dim: int = _field(
        50, "token embedding size (50 for --embeddings glove-6b-50d)", minimum=1, maximum=MAX_WIDTH
    )
    filter_sizes: tuple[int, ...] = _field(
        (3, 4, 5), "CNN filter widths, comma-separated", minimum=1, maximum=MAX_SEQUENCE_LENGTH
    )
    num_filters: int = _field(100, "CNN filters per width", minimum=1, maximum=MAX_WIDTH)
    dropout: float = _field(0.3, "dropout on the text feature vector and the decoder output", minimum=0, maximum=0.99)
    word_dropout: float = _field(
        0.1,
        "in training, the share of a document's tokens replaced by the out-of-vocabulary token (0: off)",
        minimum=0,
        maximum=0.99,
    )
    cell: str = _field("gru", "decoder RNN cell", ("lstm", "gru", "simple"))
    decoder_units: int = _field(256, "decoder RNN state size", minimum=1, maximum=MAX_WIDTH)
    decoder_layers: int = _field(1, "stacked decoder RNN cells", minimum=1, maximum=MAX_LAYERS)
    context: str = _field(
        "concat",
        "how the text feature vector enters each decoder step: concatenated to the input, only the initial state, "
        "added to the cell output, or through its own perceptron layer",
        ("concat", "init", "add", "mlp"),
    )
    attention: str = _field(
        "none",
        "Luong attention of the decoder over the CNN's per-position features",
        ("none", "dot", "general", "concat"),
    )
    scheduled_sampling: str = _field(
        "none",
        "in training, feed the decoder its own previous prediction instead of the gold label with a probability "
        "that grows per epoch",
        ("none", "linear", "exponential", "inverse-sigmoid"),
    )
    sampling_rate: float = _field(
        0.0,
        "the schedule's k (0: its default): linear p = min(1, epoch / k) (default 40); exponential p = 1 - k^epoch "
        "(default 0.97); inverse-sigmoid p = 1 - k / (k + exp(epoch / k)) (default 5)",
        minimum=0,
    )
    label_embedding_dim: int = _field(64, "previous-label embedding size", minimum=1, maximum=MAX_WIDTH)
    max_labels: int = _field(
        0,
        "most labels one document gets when decoding (0: the largest training set)",
        minimum=0,
        maximum=MAX_LABELS,
    )
    min_labels: int = _field(
        1, "fewest labels one document gets when decoding (EOS is blocked before)", minimum=0, maximum=MAX_LABELS
    )
    label_loss_weight: float = _field(
        0.0,
        "weight of an auxiliary loss: one sigmoid per label on the text feature vector (binary cross-entropy); "
        "decoding adds its log-probabilities to the label logits, weighted as tuned on dev (0: off)",
        minimum=0,
    )
    beam_size: int = _field(
        1, "default beam size for decoding (1: greedy; at most the number of labels)", minimum=1, maximum=MAX_LABELS
    )
    decision: str = _field(
        "auto",
        "how predictions become label sets: mode (the most probable sequence: greedy or beam search), marginal "
        "(labels whose share of the beam-5 probability mass, mixed with the label head's and the ensemble's "
        "probabilities by shares fitted on dev, reaches a threshold tuned on dev), or auto (fit both on dev after "
        "training and keep the better there)",
        ("mode", "marginal", "auto"),
    )
    tune_eos_bias: bool = _field(
        False, "after training, shift the end-of-sequence logit by the bias with the best dev micro-F1"
    )
    label_order: str = _field(
        "rare-first",
        "order of labels in a target sequence (rare-first: least frequent first; frequency: most frequent first, the "
        "paper's; shuffle: a fresh random order per document and epoch; model: the order the model itself ranks "
        "each document's gold labels in, found before every training step)",
        ("frequency", "rare-first", "alphabetical", "given", "shuffle", "model"),
    )
    feedback: str = _field(
        "hard",
        "the previous label a decoder step sees: its embedding (hard), or a learned gate between it and the mean "
        "label embedding under the previous step's distribution (global: SGM's global embedding)",
        ("hard", "global"),
    )
    loss: str = _field(
        "sequence",
        "training loss: sequence (cross-entropy of the next label in the order) or set (each step: -log of the "
        "probability of any gold label not yet emitted; needs --label-order model)",
        ("sequence", "set"),
    )

    ensemble: str = _field(
        "linear-br",
        "linear-br: also fit a linear-br model (TF-IDF + one linear classifier per label; --classifier, --C, "
        "--ngram-max, --min-df, --sublinear-tf) on the training data and combine it with the network after "
        "training, in proportions fitted on dev (zero included): its margins added to the network's label logits "
        "(at every decoding step) and its sigmoid mixed into the label scores; none: the network alone",
        ("none", "linear-br"),
    )

    def __post_init__(self):
        _validate(self)  # also makes lists from JSON or Python callers tuples
        if 0 < self.max_labels < self.min_labels:
            raise InputError(
                f"{option('min_labels', self.min_labels)} is more than {option('max_labels', self.max_labels)}"
            )
        if self.loss == "set" and self.label_order != "model":
            raise InputError(
                f"{option('loss', 'set')} needs {option('label_order', 'model')} (its inputs follow the model's own "
                f"ranking), got {option('label_order', self.label_order)}"
            )
        if self.scheduled_sampling == "exponential" and self.sampling_rate >= 1:
            raise bad_value("sampling_rate", self.sampling_rate, "must be below 1 for the exponential schedule")
        if 0 < self.sequence_length < max(self.filter_sizes):
            raise InputError(
                f"{option('sequence_length', self.sequence_length)} is shorter than the widest filter "
                f"({max(self.filter_sizes)})"
            )
        if self.max_tokens * self.embedding_dim > MAX_EMBEDDING:
            raise InputError(
                f"{option('max_tokens', self.max_tokens)} with {option('embedding_dim', self.embedding_dim)} is an "
                f"embedding table of {self.max_tokens * self.embedding_dim:,} numbers, more than the "
                f"{MAX_EMBEDDING:,} mlgen allows: lower one of them"
            )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the networks train (`mlgen.nn.training`; linear-br reads `seed`, `metric` and `dev_fraction`).

    See `mlgen train --help`.
    """

    epochs: int = _field(20, "most training epochs (early stopping on dev micro-F1 ends sooner)", minimum=1)
    batch_size: int = _field(32, "documents per training batch", minimum=1)
    learning_rate: float = _field(2e-3, "Adam learning rate", minimum=0)
    clipnorm: float = _field(5.0, "gradient clipping: largest gradient norm (0: off)", minimum=0)
    ema_momentum: float = _field(
        0.99,
        "Polyak averaging: score dev with, and keep, an exponential moving average of the weights with this "
        "momentum per batch (0: off)",
        minimum=0,
        maximum=0.9999,
    )
    patience: int = _field(2, "epochs without a better dev micro-F1 before stopping", minimum=0)
    seed: int = _field(0, "random seed (weights, shuffling, the dev split)", minimum=0, maximum=2**32 - 1)
    metric: str = _field(
        "micro-f1",
        "the metric predictions are decided for by default: training fits a decision on dev for each of micro-f1, "
        "macro-f1, samples-f1 (each document's F1, averaged), subset-accuracy and hamming, and saves them all; "
        "predict, evaluate and export take --metric to use another",
        DECISION_METRICS,
    )
    dev_fraction: float = _field(
        0.1, "share of the training file held out as dev when no --dev is given", minimum=0, maximum=0.99
    )
    embeddings: str | None = _field(
        "glove-6b-50d",
        "word vectors to start the token embedding from: glove-6b-50d, a GloVe/word2vec text file, or none",
        metavar="SOURCE",
    )

    def __post_init__(self):
        if self.embeddings in ("", "none", "None"):
            object.__setattr__(self, "embeddings", None)
        _validate(self)


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """The binary-relevance baselines: `--model cnn-br` (the CNN encoder, one sigmoid per
    label) and `--model linear-br` (TF-IDF + one-vs-rest linear classifier).

    Defaults were chosen on the Reuters-21578 dev split (`experiments/README.md`).
    """

    threshold: str = _field(
        "global", "decision threshold tuned on dev: one for all labels, or one per label", ("global", "per-label")
    )
    always_top: bool = _field(True, "give a document nothing reaches its top-scoring label")
    classifier: str = _field("svc", "linear-br classifier: LinearSVC or LogisticRegression", ("svc", "logreg"))
    C: float = _field(2.0, "linear-br inverse regularisation strength", minimum=1e-9)
    ngram_max: int = _field(1, "linear-br TF-IDF features: word n-grams up to this length", minimum=1, maximum=3)
    min_df: int = _field(2, "linear-br TF-IDF features: ignore terms in fewer documents", minimum=1)
    sublinear_tf: bool = _field(True, "linear-br TF-IDF: 1 + log(tf) instead of raw counts")

    def __post_init__(self):
        _validate(self)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _base_type(hint):
    """`int | None` -> int, `tuple[int, ...]` -> tuple."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    return origin or hint


def add_arguments(parser: argparse.ArgumentParser, cls, group_title: str | None = None) -> None:
    """Adds one `--flag` per field of `cls`; unset flags stay None (the dataclass default applies)."""
    group = parser.add_argument_group(group_title) if group_title else parser
    hints = _hints(cls)
    for field in dataclasses.fields(cls):
        kind = _base_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs = dict(default=None, help=f"{field.metadata['help']} (default: {shown})")
        if field.metadata.get("choices"):
            kwargs["choices"] = field.metadata["choices"]
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is tuple:
            kwargs["type"] = _int_tuple
            kwargs["metavar"] = "N,N,..."
        elif kind in (int, float, str):
            kwargs["type"] = kind
            kwargs["metavar"] = field.metadata.get("metavar") or {int: "N", float: "X", str: "NAME"}[kind]
        if kwargs.get("choices") or kind is bool:
            kwargs.pop("metavar", None)
        group.add_argument(flag, **kwargs)


def from_args(cls, args: argparse.Namespace, **overrides):
    """The config with every flag the user set; the dataclass defaults for the rest."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}
    values.update(overrides)
    return cls(**values)


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return values


def to_dict(config) -> dict:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def from_dict(cls, data: dict):
    """Builds `cls` from a dict, ignoring unknown keys (older/newer configs) and restoring tuples."""
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            value = data[field.name]
            if _base_type(hints[field.name]) is tuple and value is not None:
                value = tuple(value)
            values[field.name] = value
    return cls(**values)


def save_json(data: dict, path) -> None:
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_json(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# The `config.json` section each config class is saved under.
SECTIONS = {"model": ModelConfig, "baseline": BaselineConfig, "train": TrainConfig}


@dataclasses.dataclass(frozen=True)
class Configs:
    """The three configs a run is trained with; which fields each model type reads is
    `mlgen.registry`'s table (a type's `config.json` holds exactly those)."""

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    baseline: BaselineConfig = BaselineConfig()
