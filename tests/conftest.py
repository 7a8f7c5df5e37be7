"""Shared fixtures: tiny CSVs and one tiny trained model per session."""

from __future__ import annotations

import gzip
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
import pytest

from mlgen import datasets

# Small enough for 2 CPU cores: vocab <= 1k, length <= 50, a few hundred documents.
TINY_MODEL = dict(
    max_tokens=1000,
    sequence_length=50,
    embedding_dim=16,
    filter_sizes=(2, 3),
    num_filters=16,
    decoder_units=32,
    label_embedding_dim=16,
    tune_eos_bias=True,
    label_loss_weight=1.0,
    decision="mode",  # the decision tests fit the others; tiny runs skip the extra beam search
    ensemble="none",  # tests/test_ensemble.py trains the linear-br ensemble
)
# No weight averaging: two epochs of ~10 steps are too few for an average at momentum 0.99.
TINY_TRAIN = dict(epochs=2, batch_size=32, patience=2, seed=0, embeddings=None, ema_momentum=0.0)
TINY_FLAGS = [
    "--max-tokens", "1000", "--sequence-length", "50", "--embedding-dim", "16", "--filter-sizes", "2,3",
    "--num-filters", "16", "--decoder-units", "32", "--label-embedding-dim", "16",
    "--epochs", "2", "--batch-size", "32", "--seed", "0", "--embeddings", "none", "--ema-momentum", "0",
    "--decision", "mode", "--ensemble", "none",
]  # fmt: skip


def write_csv(path, text: str, encoding: str = "utf-8"):
    """Writes `text` to `path` (gzip when it ends in .gz) and returns the path."""
    data = text.encode(encoding)
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _tiny_frame(split: str, n: int) -> pd.DataFrame:
    """The first `n` Reuters documents of `split`, cut to 50 words, top-8 labels only."""
    frame = datasets.load("reuters21578", split)
    top = set(datasets.load("reuters21578", "train")["labels"].explode().value_counts().index[:8])
    frame["labels"] = frame["labels"].map(lambda labels: [label for label in labels if label in top])
    frame = frame[frame["labels"].map(len) > 0].head(n)
    return pd.DataFrame(
        {"text": frame["text"].map(lambda t: " ".join(t.split()[:50])), "labels": frame["labels"].map("|".join)}
    )


@pytest.fixture(scope="session")
def tiny_csvs(tmp_path_factory):
    """Paths of tiny labelled train (300 docs), dev (80) and test (80) CSVs."""
    folder = tmp_path_factory.mktemp("tiny")
    train = _tiny_frame("train", 380)
    paths = {"train": folder / "train.csv", "dev": folder / "dev.csv", "test": folder / "test.csv"}
    train.head(300).to_csv(paths["train"], index=False)
    train.tail(80).to_csv(paths["dev"], index=False)
    _tiny_frame("test", 80).to_csv(paths["test"], index=False)
    return paths


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """The tiny train and dev documents (380) as three gzip CSV shards; returns their glob."""
    folder = tmp_path_factory.mktemp("shards")
    frame = _tiny_frame("train", 380)
    for i, start in enumerate((0, 150, 260)):
        frame.iloc[start : (150, 260, 380)[i]].to_csv(folder / f"part-{i}.csv.gz", index=False)
    return str(folder / "part-*.csv.gz")


@pytest.fixture(scope="session")
def tiny_run(tiny_csvs, tmp_path_factory):
    """A tiny CNN-RNN trained by `mlgen.registry.fit` and saved; returns (predictor, run folder)."""
    from mlgen.config import ModelConfig, TrainConfig
    from mlgen.data import read_labelled_csv
    from mlgen.registry import fit

    predictor = fit(
        "cnn-rnn",
        read_labelled_csv(tiny_csvs["train"]),
        read_labelled_csv(tiny_csvs["dev"]),
        ModelConfig(**TINY_MODEL),
        TrainConfig(**TINY_TRAIN),
        verbose=0,
    )
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    predictor.save(folder)
    return predictor, folder


@pytest.fixture(scope="session")
def tiny_data(tiny_csvs):
    """The tiny CSVs read: `{"train", "dev", "test"}` -> LabelledData."""
    from mlgen.data import read_labelled_csv

    return {split: read_labelled_csv(path) for split, path in tiny_csvs.items()}


@pytest.fixture(scope="session")
def linear_run(tiny_data, tmp_path_factory):
    """A linear-br model fitted on the tiny data and saved; returns (predictor, run folder)."""
    from mlgen import registry

    predictor = registry.fit("linear-br", tiny_data["train"], tiny_data["dev"], verbose=0)
    folder = tmp_path_factory.mktemp("runs") / "linear"
    predictor.save(folder)
    return predictor, folder


@pytest.fixture(scope="session")
def ensemble_run(tiny_csvs, tmp_path_factory):
    """A tiny cnn-rnn trained by the CLI with the linear-br ensemble and the auto decision."""
    import mlgen
    from mlgen.cli import main

    run = tmp_path_factory.mktemp("runs") / "ensemble"
    argv = ["train", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"], "--out", run, *TINY_FLAGS]
    assert main([*argv, "--ensemble", "linear-br", "--decision", "auto", "--label-loss-weight", "1"]) == 0
    return mlgen.load(run), run


@pytest.fixture(scope="session")
def cnn_br_ensemble(tiny_data, tmp_path_factory):
    """A tiny cnn-br with the linear-br ensemble, fitted and saved; returns (predictor, run folder)."""
    from mlgen import registry
    from mlgen.config import ModelConfig, TrainConfig

    model = {k: v for k, v in TINY_MODEL.items() if k in registry.MODEL_TYPES["cnn-br"].reads["model"]}
    predictor = registry.fit(
        "cnn-br",
        tiny_data["train"],
        tiny_data["dev"],
        ModelConfig(**{**model, "ensemble": "linear-br"}),
        TrainConfig(**{**TINY_TRAIN, "learning_rate": 1e-2}),
        verbose=0,
    )
    folder = tmp_path_factory.mktemp("runs") / "cnn-br-ensemble"
    predictor.save(folder)
    return predictor, folder
