"""The model types behind `--model`: train one, or load any run folder.

Imports stay lazy so that `linear-br` never pulls in TensorFlow.
"""

from __future__ import annotations

from mlgen import artifacts
from mlgen.config import BaselineConfig, ModelConfig, TrainConfig
from mlgen.data import LabelledData
from mlgen.errors import InputError

MODEL_TYPES = ("cnn-rnn", "cnn-br", "linear-br")


def predictor_class(model_type: str):
    """The `Predictor` subclass that loads and runs `model_type`."""
    if model_type == "cnn-rnn":
        from mlgen.predict import SequencePredictor

        return SequencePredictor
    if model_type == "cnn-br":
        from mlgen.baselines.cnn_br import CNNBRPredictor

        return CNNBRPredictor
    if model_type == "linear-br":
        from mlgen.baselines.linear import LinearBRPredictor

        return LinearBRPredictor
    raise InputError(f"unknown model type {model_type!r}; known: {', '.join(MODEL_TYPES)}")


def load(folder):
    """Restores any run folder written by `mlgen train` or `Predictor.save`.

    Raises:
        InputError: naming the folder and the file at fault when it is not a complete,
            readable run folder.
    """
    from mlgen.predict import read_config

    folder = artifacts.check_run_dir(folder)
    model_type = read_config(folder).get("model_type", "cnn-rnn")
    if model_type not in MODEL_TYPES:
        raise artifacts.damaged(
            folder, artifacts.CONFIG, f"has the unknown model type {model_type!r} (known: {', '.join(MODEL_TYPES)})"
        )
    return predictor_class(model_type).load(folder)


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
    """Trains a model of `model_type` (see `mlgen.train.fit`, `mlgen.baselines.linear.fit`)."""
    if model_type == "linear-br":
        from mlgen.baselines import linear

        return linear.fit(train, dev, baseline_config, train_config, verbose=verbose)
    predictor_class(model_type)  # a clear error for an unknown type
    from mlgen import train as training

    return training.fit(
        train,
        dev,
        model_config,
        train_config,
        baseline_config,
        model_type=model_type,
        log_dir=log_dir,
        verbose=verbose,
    )
