"""The bundled datasets."""

import pytest

from mlgen import datasets
from mlgen.errors import InputError


def test_names_and_splits():
    assert datasets.names() == ["cooking_se", "reuters21578"]
    assert datasets.DEFAULT == "reuters21578"
    assert datasets.splits("reuters21578") == ["train", "test"]
    assert datasets.splits("cooking_se") == ["train", "dev", "test"]


@pytest.mark.parametrize(
    "name, split, docs", [("reuters21578", "train", 7769), ("reuters21578", "test", 3019), ("cooking_se", "dev", 1540)]
)
def test_load_gives_the_documented_sizes(name, split, docs):
    frame = datasets.load(name, split)
    assert list(frame.columns) == ["text", "labels"]
    assert len(frame) == docs
    assert all(isinstance(labels, list) and labels for labels in frame["labels"])
    assert set(frame["labels"].explode()) <= set(datasets.labels(name))


def test_reuters_has_90_labels_and_readme_terms():
    assert len(datasets.labels("reuters21578")) == 90
    readme = (datasets.path("reuters21578", "train").parent / "README.md").read_text()
    assert "research purposes only" in readme


def test_unknown_names_and_splits_are_clear_errors():
    with pytest.raises(InputError, match="bundled datasets are: cooking_se, reuters21578"):
        datasets.load("imdb", "train")
    with pytest.raises(InputError, match="no split 'dev'"):
        datasets.path("reuters21578", "dev")
