"""Config dataclasses: flags from fields, validation, JSON round trip."""

import argparse

import pytest

from mlgen.config import BaselineConfig, ModelConfig, TrainConfig, add_arguments, from_args, from_dict, to_dict
from mlgen.errors import InputError, names_for


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, ModelConfig)
    add_arguments(parser, TrainConfig)
    return parser.parse_args(argv)


def test_flags_come_from_fields_and_unset_flags_keep_defaults():
    args = _parse("--filter-sizes", "3,5", "--cell", "lstm", "--learning-rate", "0.01")
    model, train = from_args(ModelConfig, args), from_args(TrainConfig, args)
    assert model.filter_sizes == (3, 5) and model.cell == "lstm"
    assert model.embedding_dim == ModelConfig().embedding_dim
    assert train.learning_rate == 0.01 and train.epochs == TrainConfig().epochs


def test_json_round_trip_restores_tuples():
    model = ModelConfig(filter_sizes=(2, 4), cell="simple")
    data = to_dict(model)
    assert data["filter_sizes"] == [2, 4]
    assert from_dict(ModelConfig, {**data, "from_a_newer_version": 1}) == model
    assert ModelConfig(filter_sizes=[2, 4]).filter_sizes == (2, 4)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (ModelConfig, {"dropout": 1.5}, "--dropout must be at most 0.99"),
        (ModelConfig, {"num_filters": 0}, "--num-filters must be at least 1"),
        (ModelConfig, {"filter_sizes": (3, 0)}, "--filter-sizes must be at least 1"),
        (ModelConfig, {"cell": "transformer"}, "--cell must be one of lstm, gru, simple"),
        (ModelConfig, {"sequence_length": 3, "filter_sizes": (2, 5)}, "shorter than the widest filter"),
        (ModelConfig, {"min_labels": 3, "max_labels": 2}, "--min-labels 3 is more than --max-labels 2"),
        (
            ModelConfig,
            {"scheduled_sampling": "exponential", "sampling_rate": 3.0},
            "--sampling-rate must be below 1 for the exponential schedule",
        ),
        (TrainConfig, {"batch_size": 0}, "--batch-size must be at least 1"),
        (TrainConfig, {"dev_fraction": 1.0}, "--dev-fraction must be at most 0.99"),
    ],
)
def test_out_of_range_values_name_the_flag(cls, kwargs, message):
    with names_for("cli"), pytest.raises(InputError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (ModelConfig, {"dropout": 1.5}, "dropout=1.5: must be at most 0.99"),
        (BaselineConfig, {"C": -1}, "C=-1: must be at least"),
        (ModelConfig, {"min_labels": 3, "max_labels": 2}, "min_labels=3 is more than max_labels=2"),
        (TrainConfig, {"epochs": 2.5}, "epochs=2.5: must be a whole number"),
    ],
)
def test_python_callers_are_told_the_parameter_not_the_flag(cls, kwargs, message):
    with pytest.raises(InputError, match=message) as caught:
        cls(**kwargs)
    assert "--" not in str(caught.value)


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (TrainConfig, {"learning_rate": float("nan")}, "--learning-rate must be a finite number, got nan"),
        (TrainConfig, {"learning_rate": float("inf")}, "--learning-rate must be a finite number, got inf"),
        (ModelConfig, {"dropout": float("nan")}, "--dropout must be a finite number"),
        (BaselineConfig, {"C": float("nan")}, "--C must be a finite number"),
        (TrainConfig, {"seed": 99999999999}, "--seed must be at most 4294967295"),
        (TrainConfig, {"epochs": 2.5}, "--epochs must be a whole number, got 2.5"),
        (ModelConfig, {"cell": 3}, "--cell must be a name"),
        (ModelConfig, {"filter_sizes": ()}, "--filter-sizes must be one or more whole numbers"),
        (ModelConfig, {"tune_eos_bias": "yes"}, "--tune-eos-bias must be true or false"),
    ],
)
def test_non_finite_wrong_typed_and_huge_values_are_refused(cls, kwargs, message):
    with names_for("cli"), pytest.raises(InputError, match=message):
        cls(**kwargs)


def test_numpy_numbers_from_a_parameter_grid_become_python_numbers():
    import json

    import numpy as np

    model = ModelConfig(num_filters=np.int64(8), dropout=np.float32(0.25), filter_sizes=np.array([2, 3]).tolist())
    assert type(model.num_filters) is int and type(model.dropout) is float
    json.dumps(to_dict(model))


@pytest.mark.parametrize("flag, value", [("--learning-rate", "nan"), ("--dropout", "nan"), ("--seed", "99999999999")])
def test_the_cli_refuses_them_with_one_line(flag, value, capsys):
    from mlgen.cli import main

    assert main(["train", "--out", "never-written", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mlgen: error: {flag} must be") and err.count("\n") == 1
