"""The model table: each type's name written once, what each type supports declared once, and the CLI,
the estimators and the predictors asking it."""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest
from test_layout import ALLOWED, PACKAGE

import mlgen
from mlgen import artifacts, estimator, registry
from mlgen.cli import common, main
from mlgen.config import ModelConfig
from mlgen.errors import InputError

NAMES = set(registry.MODEL_TYPES)
# What a model type's name looks like, wherever it is written (code, strings, docstrings, comments,
# help text): a stale name left by a rename is caught by its shape.
NAME_SHAPED = re.compile(r"(?<![\w-])(?:(?:cnn|linear)-[a-z0-9]+|[a-z0-9]+-(?:rnn|br))(?![\w-])")
# Modules that may import `mlgen.artifacts` must use its constants rather than write a name as a string.


def _patched(monkeypatch, name: str, **capabilities) -> None:
    """Replaces the table entry of `name` with one whose capabilities are `capabilities`."""
    entry = dataclasses.replace(registry.MODEL_TYPES[name], **capabilities)
    monkeypatch.setitem(registry.MODEL_TYPES, name, entry)


def _sources():
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".md") and "__pycache__" not in path.parts:
            yield path, path.read_text(encoding="utf-8")


def test_every_mention_of_a_model_type_in_the_package_is_a_name_in_the_table():
    found, stale = {}, []
    for path, text in _sources():
        for number, line in enumerate(text.splitlines(), 1):
            for match in NAME_SHAPED.finditer(line):
                found[match.group()] = found.get(match.group(), 0) + 1
                if match.group() not in NAMES:
                    stale.append(f"{path.relative_to(PACKAGE)}:{number}: {match.group()}")
    assert not stale, f"not a model type of mlgen.registry.MODEL_TYPES ({sorted(NAMES)}): {stale}"
    assert set(found) == NAMES and min(found.values()) > 5  # the pattern does find the names


def test_the_name_shape_catches_a_renamed_type():
    assert NAME_SHAPED.findall("cnn-rnn's decoder, cnn-br and linear-br (`--model cnn-sig`)") == [
        "cnn-rnn",
        "cnn-br",
        "linear-br",
        "cnn-sig",
    ]
    assert NAME_SHAPED.findall("the CNN-RNN paper, a non-linear-model, --label-order rare-first") == []


def _string_names(path) -> list[int]:
    """Lines of `path` where a string constant is exactly a model type's name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
    ]


def test_code_that_can_import_the_names_never_writes_them():
    """Each name is a string once, in `mlgen.artifacts`; the rooms below it (config, data, eval,
    linear) cannot import it and are held to the table by the test above."""
    written = {}
    for path, _ in _sources():
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if path.suffix != ".py" or "artifacts" not in ALLOWED[parts[0]]:
            continue
        lines = _string_names(path)
        name = str(path.relative_to(PACKAGE))
        if lines:
            written[name] = lines
    assert not written, f"write mlgen.artifacts.CNN_RNN, CNN_BR or LINEAR_BR instead: {written}"
    assert len(_string_names(PACKAGE / "artifacts.py")) == len(NAMES) == 3
    assert {artifacts.CNN_RNN, artifacts.CNN_BR, artifacts.LINEAR_BR} == NAMES


def test_what_names_a_type_elsewhere_agrees_with_the_table():
    assert registry.DEFAULT in NAMES and artifacts.model_type({}) == registry.DEFAULT  # folders before the baselines
    assert [entry.name for entry in registry.MODEL_TYPES.values()] == list(registry.MODEL_TYPES)
    # The ensemble is a linear-br model: its config value is that type's name.
    ensemble = next(f for f in dataclasses.fields(ModelConfig) if f.name == "ensemble")
    assert set(ensemble.metadata["choices"]) - {"none"} == {artifacts.LINEAR_BR}
    # One estimator per type, each naming a type of the table.
    estimators = [
        cls for cls in vars(estimator).values() if isinstance(cls, type) and cls.__module__ == estimator.__name__
    ]
    typed = sorted(cls.model_type for cls in estimators if issubclass(cls, estimator._Estimator) and cls.model_type)
    assert typed == sorted(NAMES)


def test_a_predictor_is_named_and_told_its_entry_by_the_table(linear_run):
    predictor, folder = linear_run
    loaded = mlgen.load(folder)
    for p in (predictor, loaded):
        assert p.model_type == artifacts.LINEAR_BR and p.entry is registry.MODEL_TYPES[artifacts.LINEAR_BR]
    assert registry.entry_of(folder) is registry.MODEL_TYPES[artifacts.LINEAR_BR]


def test_capabilities_agree_with_the_predictors_behind_them():
    for entry in registry.MODEL_TYPES.values():
        assert entry.explains == hasattr(entry.predictor_class(), "explain"), entry.name
    assert registry.supporting("searches") == "cnn-rnn"
    assert registry.supporting("streams") == registry.supporting("workers") == "cnn-rnn and cnn-br"


def test_supporting_lists_the_types_in_table_order(monkeypatch):
    for name in NAMES:
        _patched(monkeypatch, name, searches=True)
    assert registry.supporting("searches") == "cnn-rnn, cnn-br and linear-br"


def test_binary_relevance_refuses_a_search_as_the_table_says(linear_run, monkeypatch):
    predictor, folder = linear_run
    texts = ["wheat exports rose", "the bank raised rates"]
    with pytest.raises(InputError, match=r"^beam_size applies to cnn-rnn models; this is a linear-br model$"):
        predictor.predict(texts, beam_size=3)
    with pytest.raises(InputError, match=r"^decision applies to cnn-rnn models; this is a linear-br model$"):
        predictor.predict(texts, decision="mode")
    assert predictor.predict(texts, beam_size=1, decision="threshold") == predictor.predict(texts)
    # The check and its words come from the table: change it, and the predictor follows.
    _patched(monkeypatch, artifacts.CNN_BR, searches=True)
    with pytest.raises(InputError, match="applies to cnn-rnn and cnn-br models; this is a linear-br model"):
        mlgen.load(folder).predict(texts, beam_size=3)
    _patched(monkeypatch, artifacts.LINEAR_BR, searches=True)
    assert mlgen.load(folder).predict(texts, beam_size=3) == predictor.predict(texts)


@pytest.mark.parametrize("flags", [["--beam-size", "3"], ["--decision", "marginal"]])
def test_evaluate_refuses_a_search_for_binary_relevance_before_predicting(flags, linear_run, tiny_csvs, capsys):
    _, folder = linear_run
    assert main(["evaluate", "--model", str(folder), "--data", str(tiny_csvs["test"]), *flags]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"mlgen: error: {flags[0]} applies to cnn-rnn models; this is a linear-br model"


def test_check_decoding_asks_the_table(linear_run, monkeypatch):
    predictor, _ = linear_run
    common.check_decoding(predictor)  # nothing given: nothing to refuse
    with pytest.raises(InputError, match="beam_size applies to"):
        common.check_decoding(predictor, beam_size=2)
    monkeypatch.setattr(predictor, "entry", dataclasses.replace(predictor.entry, searches=True))
    common.check_decoding(predictor, beam_size=2, decision="mode")


def test_explain_refuses_a_type_the_table_says_cannot_explain_before_loading(linear_run, tmp_path, monkeypatch, capsys):
    _, folder = linear_run

    def no_load(_):
        raise AssertionError("loaded a model that cannot explain")

    monkeypatch.setattr(registry, "load", no_load)
    argv = ["explain", "--model", str(folder), "--text", "wheat", "--out", str(tmp_path / "why.png")]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"mlgen: error: {folder}: explain needs a cnn-rnn model, this is linear-br\n"
    _patched(monkeypatch, artifacts.CNN_BR, explains=True)
    assert main(argv) == 2
    assert "explain needs a cnn-rnn and cnn-br model, this is linear-br" in capsys.readouterr().err
    assert not (tmp_path / "why.png").exists()


def test_estimators_explain_where_the_table_says(monkeypatch):
    assert hasattr(mlgen.LabelSequenceClassifier(), "explain")
    assert not hasattr(mlgen.CNNBinaryRelevanceClassifier(), "explain")
    assert not hasattr(mlgen.LinearBinaryRelevanceClassifier(), "explain")
    _patched(monkeypatch, artifacts.LINEAR_BR, explains=True)
    assert hasattr(mlgen.LinearBinaryRelevanceClassifier(), "explain")


def test_streaming_refusal_names_the_types_the_table_streams(monkeypatch):
    with pytest.raises(InputError, match=r"^--stream trains cnn-rnn and cnn-br; --model linear-br fits in memory$"):
        common._streams(artifacts.LINEAR_BR, True, [])
    _patched(monkeypatch, artifacts.CNN_BR, streams=False)
    with pytest.raises(InputError, match=r"^--stream trains cnn-rnn; --model cnn-br fits in memory$"):
        common._streams(artifacts.CNN_BR, True, [])
