"""`mlgen compare` end to end on a tiny CSV, and the CLI around the baselines."""

import json

import pandas as pd
import pytest
from conftest import TINY_FLAGS

from mlgen import compare
from mlgen.cli import main
from mlgen.config import DECISION_METRICS
from mlgen.eval.metrics import PER_LABEL_COLUMNS, RANKING_KEYS, SCORE_KEYS


def test_compare_writes_tables_and_plots(tiny_csvs, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"], "--test", tiny_csvs["test"]]
    assert main([*args, "--seeds", "1", "--out", out, *TINY_FLAGS]) == 0
    printed = capsys.readouterr().out
    results = pd.read_csv(out / compare.RESULTS)
    models = ["cnn-rnn", "cnn-br", "linear-br"]
    assert results["model"].tolist() == [m for m in models for _ in DECISION_METRICS]
    assert results["decision_metric"].tolist() == list(DECISION_METRICS) * 3
    for key in (*SCORE_KEYS, *RANKING_KEYS, "train_seconds", "predict_docs_per_s"):
        assert f"{key}_mean" in results and f"{key}_std" in results
    assert results["P@1_mean"].between(0, 1).all() and "| P@1 |" in (out / compare.RESULTS_MD).read_text()
    assert (results["seeds"] == 1).all() and (results["micro_f1_std"] == 0).all()
    assert results["micro_f1_mean"].between(0, 1).all() and (results["predict_docs_per_s_mean"] > 0).all()
    runs = pd.read_csv(out / compare.RUNS)
    assert len(runs) == 15 and (runs["seed"] == 0).all()
    keys = ["model", "decision_metric"]
    assert runs.set_index(keys)["micro_f1"].to_dict() == pytest.approx(
        results.set_index(keys)["micro_f1_mean"].to_dict()
    )
    assert runs["ece"].between(0, 1).all()  # predict_proba's probabilities, every model's calibrated on dev
    ece_scores = runs.groupby("model")["ece_scores"]
    assert ece_scores.apply(lambda e: e.between(0, 1).all())[["cnn-rnn", "cnn-br"]].all()  # probabilities
    margins = runs[(runs["model"] == "linear-br") & (runs["decision"] == "threshold")]
    assert len(margins) and margins["ece_scores"].isna().all()  # SVM margins: no error
    # Each row was decided by the rule its model fitted for that metric.
    for _, row in runs.iterrows():
        assert row["decision"].split(" + ")[0] in (
            "mode",
            "marginal",
            "expected-f1",
            "threshold",
            "expected-f1-independent",
        )
    per_label = pd.read_csv(out / compare.PER_LABEL)
    assert per_label.columns.tolist() == ["label", "train_docs", "cnn-rnn", "cnn-br", "linear-br"]
    for name in compare.PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / compare.RESULTS_MD).read_text()
    assert "| cnn-rnn |" in table and " ± " in table and table in printed
    assert [line for line in table.splitlines() if line.startswith("Decided for ")] == [
        f"Decided for {m} (each model under the rule it fitted on dev for it):" for m in DECISION_METRICS
    ]


def test_compare_runs_every_seed(tiny_csvs, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--train", tiny_csvs["train"], "--test", tiny_csvs["test"], "--models", "linear-br"]
    assert main([*args, "--seeds", "2", "--metrics", "subset-accuracy,micro-f1", "--out", out]) == 0
    runs = pd.read_csv(out / compare.RUNS)
    assert runs["seed"].tolist() == [0, 0, 1, 1]
    assert runs["decision_metric"].tolist() == ["subset-accuracy", "micro-f1"] * 2
    results = pd.read_csv(out / compare.RESULTS).set_index("decision_metric")
    for metric in ("subset-accuracy", "micro-f1"):
        mine = runs[runs["decision_metric"] == metric]
        assert results.loc[metric, "micro_f1_mean"] == pytest.approx(mine["micro_f1"].mean())
        assert results.loc[metric, "subset_accuracy_mean"] == pytest.approx(mine["subset_accuracy"].mean())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["compare", "--models", "cnn-rnn,svm", "--out", "x"], "--models: unknown svm"),
        (["compare", "--seeds", "0", "--out", "x"], "--seeds must be at least 1"),
        (["compare", "--metrics", "micro-f1,speed", "--out", "x"], "--metrics: unknown speed; choose from micro-f1"),
        (["compare", "--train", "t.csv", "--out", "x"], "--train needs --test"),
        (["train", "--model", "linear-br", "--cell", "lstm", "--out", "x"], "--cell: not used by --model linear-br"),
        (
            ["train", "--model", "cnn-br", "--ensemble", "none", "--C", "2", "--out", "x"],
            "--C: not used by --model cnn-br --ensemble none",
        ),
        (["train", "--threshold", "per-label", "--out", "x"], "--threshold: not used by --model cnn-rnn"),
    ],
)
def test_bad_compare_and_baseline_flags(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error:") and expected in err


def test_evaluate_per_label_csv(tiny_run, tiny_csvs, tmp_path):
    _, folder = tiny_run
    path = tmp_path / "per_label.csv"
    assert main(["evaluate", "--model", folder, "--data", tiny_csvs["test"], "--per-label", path]) == 0
    table = pd.read_csv(path)
    assert table.columns.tolist() == list(PER_LABEL_COLUMNS)
    gold = pd.read_csv(tiny_csvs["test"])["labels"].str.split("|").explode().value_counts()
    assert table.set_index("label")["support"].to_dict() == {label: gold.get(label, 0) for label in table["label"]}


@pytest.mark.parametrize("empty_sets", [False, True], ids=["one-label-only", "one-label-or-none"])
def test_one_label_overall_trains_evaluates_and_compares_every_model(tiny_csvs, tmp_path, empty_sets, capsys):
    # One-class tagging: sample-wise metrics used to crash every model type and compare.
    frame = pd.read_csv(tiny_csvs["train"], keep_default_na=False)
    if empty_sets:
        frame["labels"] = frame["labels"].map(lambda cell: "earn" if "earn" in cell.split("|") else "")
    else:
        frame["labels"] = "earn"
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    frame.head(240).to_csv(train, index=False)
    frame.tail(60).to_csv(test, index=False)
    out = tmp_path / "cmp"
    argv = ["compare", "--train", train, "--test", test, "--seeds", "1", "--out", out, "--allow-empty-labels"]
    assert main([*argv, *TINY_FLAGS]) == 0
    results = pd.read_csv(out / compare.RESULTS).set_index("model")
    assert results["micro_f1_mean"].between(0, 1).all()
    if not empty_sets:
        assert (results["micro_f1_mean"] == 1.0).all()  # the one label on every document
    run = tmp_path / "run"
    assert main(["train", "--train", train, "--out", run, "--allow-empty-labels", *TINY_FLAGS]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", run, "--data", test, "--allow-empty-labels", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["samples_f1"] <= 1.0
