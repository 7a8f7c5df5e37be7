"""The table of model types behind `--model`: what each reads, fits with and loads as.

`MODEL_TYPES` maps each name (`mlgen.artifacts.CNN_RNN`, ...: each written there alone) to a
`ModelType`: its `Predictor` class (imported only when the type is used, so that linear-br
never imports TensorFlow), the config fields it reads and what it supports (a search with
beam size and decision rules, explanations, workers, streaming). Those fields are, at once,
the flags `mlgen train --model NAME` accepts and the sections of its `config.json`; the CLI
and the estimators ask the capabilities here, never the predictor. `fit` and `load` are the
only ways in: each hands its predictor its entry (`Predictor.entry`).
"""

from __future__ import annotations

import dataclasses
import importlib
import time

from mlgen import artifacts
from mlgen.config import SECTIONS, BaselineConfig, Configs, ModelConfig, TrainConfig, to_dict
from mlgen.data import LabelledData, train_dev_split
from mlgen.data.stream import LabelledStream
from mlgen.errors import InputError, option
from mlgen.predictors.base import read_config
from mlgen.version import __version__

# Field groups of the configs, as the model types read them.
ENCODER_FIELDS = (
    "max_tokens",
    "sequence_length",
    "embedding_dim",
    "filter_sizes",
    "num_filters",
    "dropout",
    "word_dropout",
)
# linear-br's features and classifier: linear-br's own, and the neural types' ensemble's.
LINEAR_FIELDS = ("classifier", "C", "ngram_max", "min_df", "sublinear_tf")
# The threshold rule of binary relevance.
THRESHOLD_FIELDS = ("threshold", "always_top")
# The decision rule of a type that does not search: its scores against the threshold tuned on dev.
THRESHOLD_RULE = "threshold"


def _all(cls) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


@dataclasses.dataclass(frozen=True)
class ModelType:
    """One `--model`.

    Attributes:
        name: the `--model` name, also `config.json`'s `model_type`.
        help: one line for `mlgen train --help`.
        predictor: `"module:Class"` of its `Predictor` subclass (imported when used).
        reads: per `config.json` section (`"model"`, `"baseline"`, `"train"`), the
            fields it reads, the linear-br ensemble's aside.
        ensemble: whether it takes `ModelConfig.ensemble`; when that is `"linear-br"`
            it reads `LINEAR_FIELDS` too.
        searches: whether it predicts by a search that takes a beam size and a decision rule
            (`beam_size`, `decision`: `mlgen predict|evaluate|export --beam-size --decision`);
            the others take neither (a beam of 1 and their rule, `THRESHOLD_RULE`, pass).
        explains: whether its predictions can be explained (`mlgen explain`, `explain(text)`).
        workers: whether it trains on several workers (`mlgen train --workers`, `TF_CONFIG`).
        streams: whether it trains on data read chunk by chunk (`mlgen train --stream`).
    """

    name: str
    help: str
    predictor: str
    reads: dict[str, tuple[str, ...]]
    ensemble: bool = False
    searches: bool = False
    explains: bool = False
    workers: bool = False
    streams: bool = False

    def fields(self, ensemble: str = ModelConfig.ensemble) -> dict[str, tuple[str, ...]]:
        """The fields read per section, with the ensemble's when it is on (sections it reads nothing of left out)."""
        sections = {key: self.reads.get(key, ()) for key in SECTIONS}
        if self.ensemble and ensemble == artifacts.LINEAR_BR:
            sections["baseline"] = (*sections["baseline"], *LINEAR_FIELDS)
        return {key: names for key, names in sections.items() if names}

    def check_decoding(self, beam_size=None, decision=None) -> None:
        """An InputError for a `beam_size` or `decision` this type does not take (the types that
        search check the values themselves), named as the user's door names it."""
        if self.searches:
            return
        for name, value, passes in (
            ("beam_size", beam_size, (None, 1)),
            ("decision", decision, (None, THRESHOLD_RULE)),
        ):
            if value not in passes:
                raise InputError(
                    f"{option(name)} applies to {supporting('searches')} models; this is a {self.name} model"
                )

    def predictor_class(self):
        """The `Predictor` subclass that fits, loads and runs this type."""
        module, name = self.predictor.split(":")
        return getattr(importlib.import_module(module), name)

    def run_config(self, configs: Configs) -> dict:
        """The `config.json` of a run of this type with `configs` (before training resolves
        data-dependent values such as `sequence_length`)."""
        config = {"mlgen_version": __version__, "model_type": self.name}
        for section, names in self.fields(configs.model.ensemble).items():
            values = to_dict(getattr(configs, section))
            config[section] = {name: values[name] for name in names}
        return config


MODEL_TYPES: dict[str, ModelType] = {
    model_type.name: model_type
    for model_type in (
        ModelType(
            artifacts.CNN_RNN,
            "label-sequence generation: a CNN encoder and an RNN decoder",
            "mlgen.predictors.cnn_rnn:SequencePredictor",
            {"model": _all(ModelConfig), "train": _all(TrainConfig)},
            ensemble=True,
            searches=True,
            explains=True,
            workers=True,
            streams=True,
        ),
        ModelType(
            artifacts.CNN_BR,
            "binary relevance with the same encoder: one sigmoid per label",
            "mlgen.predictors.cnn_br:CNNBRPredictor",
            {"model": (*ENCODER_FIELDS, "ensemble"), "baseline": THRESHOLD_FIELDS, "train": _all(TrainConfig)},
            ensemble=True,
            workers=True,
            streams=True,
        ),
        ModelType(
            artifacts.LINEAR_BR,
            "binary relevance with TF-IDF and one linear classifier per label (no TensorFlow)",
            "mlgen.predictors.linear_br:LinearBRPredictor",
            {"baseline": _all(BaselineConfig), "train": ("seed", "metric", "dev_fraction")},
        ),
    )
}
DEFAULT = artifacts.CNN_RNN


def supporting(capability: str) -> str:
    """The names of the types whose `capability` (a `ModelType` field: `"searches"`, `"workers"`,
    ...) is on, for messages and help: `"cnn-rnn and cnn-br"`."""
    names = [name for name, entry in MODEL_TYPES.items() if getattr(entry, capability)]
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1]))) if names else "no"


def get(model_type: str) -> ModelType:
    """The table entry of `model_type`, or an InputError naming the known ones."""
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise InputError(f"unknown model type {model_type!r}; known: {', '.join(MODEL_TYPES)}") from None


def fit(
    model_type: str,
    train: LabelledData,
    dev: LabelledData | None = None,
    model_config: ModelConfig = ModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    baseline_config: BaselineConfig = BaselineConfig(),
    *,
    log_dir=None,
    verbose=1,
):
    """Trains a model of `model_type` and returns its fitted `Predictor`.

    What every type shares is done here: without `dev`, `train_config.dev_fraction`
    of `train` is split off with `train_config.seed`; the run's `config.json` holds the
    fields the type reads (`ModelType.fields`); `metrics` gets the dev scores of the
    fitted predictions and the training time, beside what the type measured.

    Args:
        model_type: a name in `MODEL_TYPES`.
        train, dev: training and dev data; `train` alone builds the vocabularies. `train`
            may be a `LabelledStream` (types that stream), which brings its dev.
        model_config, train_config, baseline_config: the hyperparameters (each type
            reads its fields).
        log_dir: where TensorBoard logs go (neural types; none when None).
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    """
    from mlgen.eval import metrics  # scikit-learn: imported to train, not for `mlgen --help`

    entry = get(model_type)
    started = time.perf_counter()
    streamed = isinstance(train, LabelledStream)
    if streamed and not entry.streams:
        raise InputError(f"{model_type} fits in memory; read its training data with `read_labelled_csv`")
    if dev is None:
        if streamed:
            raise InputError("a streamed training set brings its dev set: `mlgen.data.stream.scan` returns both")
        train, dev = train_dev_split(train, train_config.dev_fraction, train_config.seed)
    configs = Configs(model_config, train_config, baseline_config)
    config = entry.run_config(configs)
    config["versions"] = artifacts.versions()
    config["data"] = {"train": train.source, "dev": dev.source, "train_docs": len(train), "dev_docs": len(dev)}
    if streamed:
        config["data"]["stream"] = {"chunk_rows": train.chunksize, "sample_docs": len(train.sample)}
    predictor = entry.predictor_class().fit(train, dev, configs, config, log_dir=log_dir, verbose=verbose)
    predictor.entry = entry
    dev_scores = metrics.evaluate(dev.label_sets, predictor.predict(dev.texts), predictor.labels)
    predictor.metrics = {
        "dev": dev_scores,
        **predictor.metrics,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return predictor


def entry_of(folder) -> ModelType:
    """The table entry of the model type a run folder holds (its `config.json`'s `model_type`),
    read without loading the model, so that a command can ask what it supports first.

    Raises:
        InputError: naming the folder and the file at fault when it is not a run folder, or
            names a model type not in the table.
    """
    folder = artifacts.check_run_dir(folder)
    model_type = artifacts.model_type(read_config(folder))
    if model_type not in MODEL_TYPES:
        raise artifacts.damaged(
            folder, artifacts.CONFIG, f"has the unknown model type {model_type!r} (known: {', '.join(MODEL_TYPES)})"
        )
    return MODEL_TYPES[model_type]


def load(folder):
    """Restores any run folder written by `mlgen train` or `Predictor.save`.

    Raises:
        InputError: naming the folder and the file at fault when it is not a complete,
            readable run folder.
    """
    entry = entry_of(folder)
    predictor = entry.predictor_class().load(folder)
    predictor.entry = entry
    return predictor
