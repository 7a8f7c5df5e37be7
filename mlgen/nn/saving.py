"""Reading a run folder's `model.keras`, checked: one line naming the folder and file when it is not right."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import keras

from mlgen import artifacts
from mlgen.data import LabelVocabulary
from mlgen.errors import InputError, first_line, format_rows
from mlgen.nn import binary_relevance, label_sequence, targets  # noqa: F401  registers mlgen's Keras classes
from mlgen.version import __version__


def load_network(folder: Path, config: dict, vocab: LabelVocabulary, expected: type):
    """The `.keras` model of a run folder, loaded in safe mode with mlgen's layers registered.

    Raises:
        InputError: naming the folder and `model.keras` when the file is missing or
            damaged, was written by another mlgen, holds another kind of model than
            `expected` (the class `config.json`'s model type needs), or labels other
            than `vocab`'s.
    """
    path = artifacts.model_file(folder, artifacts.MODEL, config)
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
            f"says model type {artifacts.model_type(config)}, but {artifacts.MODEL} holds a {type(model).__name__}",
        )
    if list(model.labels) != vocab.labels:
        raise artifacts.damaged(
            folder,
            artifacts.LABEL_VOCAB,
            f"does not match {artifacts.MODEL} ({_label_difference(vocab.labels, list(model.labels))})",
        )
    return model


def _label_difference(labels: list[str], model_labels: list[str]) -> str:
    """How `label_vocab.json`'s labels differ from the model's, in a few words."""
    if len(labels) != len(model_labels):
        return f"{len(labels)} labels against the model's {len(model_labels)}"
    if sorted(labels) == sorted(model_labels):
        i = next(i for i, (a, b) in enumerate(zip(labels, model_labels)) if a != b)
        return (
            f"the same {len(labels)} labels in another order: label {i + 1} is {labels[i]!r}, "
            f"the model's {model_labels[i]!r}"
        )
    extra = [label for label in labels if label not in set(model_labels)]
    missing = [label for label in model_labels if label not in set(labels)]
    return (
        f"{len(labels)} labels like the model's, but {format_rows(map(repr, extra), 3)} instead of the model's "
        f"{format_rows(map(repr, missing), 3)}"
    )
