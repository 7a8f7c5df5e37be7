"""Matplotlib figures for `mlgen compare` and `mlgen explain`, written as image files.

Figures are drawn with matplotlib's object API (`matplotlib.figure.Figure`), which
needs no display and selects no backend: importing or calling this module changes no
global matplotlib state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# File types `attention` writes (by the --out suffix).
FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
_COLORS = {"cnn-rnn": "tab:blue", "cnn-br": "tab:orange", "linear-br": "tab:green"}


def _color(model: str, i: int) -> str:
    return _COLORS.get(model, f"C{i + 3}")


def per_label_f1(frequency: Mapping[str, int], f1: Mapping[str, Mapping[str, float]], path) -> None:
    """Test F1 of every label against its training frequency (log x), one series per model.

    Args:
        frequency: label -> training documents with it.
        f1: model -> label -> F1 (averaged over seeds).
    """
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for i, (model, scores) in enumerate(f1.items()):
        labels = [label for label in scores if frequency.get(label, 0) > 0]
        ax.scatter(
            [frequency[label] for label in labels],
            [scores[label] for label in labels],
            s=14,
            alpha=0.7,
            label=model,
            color=_color(model, i),
        )
    ax.set_xscale("log")
    ax.set_xlabel("training documents with the label")
    ax.set_ylabel("test F1")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Per-label F1 against label frequency")
    ax.legend()
    _save(fig, path)


def training_curves(histories: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], path) -> None:
    """Training loss and dev micro-F1 per epoch; one line per model and seed.

    Args:
        histories: model -> one Keras history dict per seed (`loss`, `val_micro_f1`).
    """
    fig = Figure(figsize=(10, 4))
    loss_ax, f1_ax = fig.subplots(1, 2)
    for i, (model, runs) in enumerate(histories.items()):
        for j, history in enumerate(runs):
            epochs = np.arange(1, len(history.get("loss", [])) + 1)
            label = model if j == 0 else None
            loss_ax.plot(epochs, history.get("loss", []), color=_color(model, i), alpha=0.8, label=label)
            f1_ax.plot(epochs, history.get("val_micro_f1", []), color=_color(model, i), alpha=0.8, label=label)
    loss_ax.set_ylabel("training loss (each model its own)")
    f1_ax.set_ylabel("dev micro-F1")
    for ax in (loss_ax, f1_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if histories:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no model trained in epochs", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Training curves")
    _save(fig, path)


def set_sizes(gold: Sequence[int], predicted: Mapping[str, Sequence[int]], path) -> None:
    """How many labels documents get: the gold sets against each model's predictions."""
    series = {"gold": list(gold), **{model: list(sizes) for model, sizes in predicted.items()}}
    largest = max((max(sizes, default=0) for sizes in series.values()), default=0)
    bins = np.arange(0, largest + 2)
    width = 0.8 / len(series)
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for i, (name, sizes) in enumerate(series.items()):
        counts = np.bincount(np.asarray(sizes, dtype=int), minlength=len(bins))[: len(bins)]
        color = "black" if name == "gold" else _color(name, i)
        ax.bar(bins + (i - (len(series) - 1) / 2) * width, counts / max(len(sizes), 1), width, label=name, color=color)
    ax.set_xticks(bins)
    ax.set_xlabel("labels per document")
    ax.set_ylabel("share of test documents")
    ax.set_title("Label-set sizes: gold against predicted")
    ax.legend()
    _save(fig, path)


def reliability(tables: Mapping[str, object], path) -> None:
    """Reliability diagram: per bin of probability (`predict_proba`'s, in `compare`), the share of
    (document, label) pairs that are gold against the mean probability, one line per model
    (`mlgen.eval.metrics.calibration`'s tables; a model without probabilities is left out), the
    diagonal for perfect calibration.
    Marker areas follow the bins' pair counts (log)."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    for i, (model, table) in enumerate(tables.items()):
        if table is None or not len(table):
            continue
        sizes = 6 + 10 * np.log10(np.asarray(table["pairs"], float))
        ax.plot(table["confidence"], table["frequency"], color=_color(model, i), linewidth=1)
        ax.scatter(table["confidence"], table["frequency"], s=sizes, color=_color(model, i), label=model)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean probability in the bin")
    ax.set_ylabel("share of those labels that are gold")
    ax.set_title("Reliability of the probabilities (predict_proba)")
    ax.legend()
    _save(fig, path)


def attention(explanation, path) -> None:
    """A heatmap of an `Explanation`: one row per predicted label, one column per token."""
    weights = np.asarray(explanation.weights)
    fig = Figure(figsize=(min(2 + 0.35 * len(explanation.tokens), 30), 1.2 + 0.45 * len(explanation.labels)))
    ax = fig.subplots()
    image = ax.imshow(weights, aspect="auto", cmap="Blues", vmin=0.0)
    ax.set_xticks(np.arange(len(explanation.tokens)), explanation.tokens, rotation=90, fontsize=8)
    ax.set_yticks(np.arange(len(explanation.labels)), explanation.labels)
    ax.set_title("Attention behind each predicted label (rows sum to 1)")
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    _save(fig, path)


def _save(fig, path) -> None:
    fig.tight_layout()
    suffix = Path(path).suffix.lower()
    fig.savefig(path, dpi=110, format=suffix[1:] if suffix in FORMATS else "png")
