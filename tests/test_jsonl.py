"""JSON Lines in and out: the one reader's rules and errors with line numbers, and `predict`'s outputs."""

import io
import json

import pandas as pd
import pytest
from conftest import write_csv

import mlgen
from mlgen.cli import main
from mlgen.data import CSVFormat, read_labelled_csv, read_texts
from mlgen.errors import InputError

LINES = [
    {"text": "wheat rose", "labels": ["grain", " wheat "], "id": 1},
    {"text": "banks lend", "labels": ["money"], "id": 2},
    {"text": "oil fell", "labels": ["crude", "crude"], "id": 3},
]


def _jsonl(path, records, extra_lines=()):
    text = "\n".join([*(json.dumps(r) for r in records), *extra_lines]) + "\n"
    return write_csv(path, text)


@pytest.mark.parametrize("name", ["data.jsonl", "data.jsonl.gz", "data.ndjson"])
def test_json_lines_read_as_the_same_csv_does(tmp_path, name):
    jsonl = read_labelled_csv(_jsonl(tmp_path / name, LINES))
    csv = read_labelled_csv(
        write_csv(
            tmp_path / "data.csv",
            "text,labels,id\nwheat rose,grain| wheat ,1\nbanks lend,money,2\noil fell,crude|crude,3\n",
        )
    )
    assert (jsonl.texts, jsonl.label_sets, jsonl.rows) == (csv.texts, csv.label_sets, csv.rows)
    assert jsonl.label_sets[0] == ["grain", "wheat"] and jsonl.label_sets[2] == ["crude"]
    assert read_texts(tmp_path / name).texts == csv.texts


def test_json_lines_count_blank_lines_and_drop_invalid_ones_by_line(tmp_path):
    records = [*LINES, {"text": "no labels"}, {"text": "", "labels": ["a"]}]
    path = _jsonl(tmp_path / "d.jsonl", records[:3], ["", *(json.dumps(r) for r in records[3:])])
    data = read_labelled_csv(path, CSVFormat(drop_invalid=True))
    assert data.rows == [1, 2, 3] and data.dropped == {"empty row": [4], "empty text": [6], "empty labels": [5]}
    with pytest.raises(InputError, match=r"d.jsonl: empty labels in column 'labels' at data rows 5; pass"):
        read_labelled_csv(path)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "a", "labels": ["x"]', r"line 2 is not valid JSON \(Expecting ',' delimiter at column 30\)"),
        ('["a", ["x"]]', r"line 2 is a JSON list, not an object with fields"),
        ('{"text": 3, "labels": ["x"]}', r"line 2: field 'text' holds 3, not a string"),
        ('{"text": "a", "labels": "x|y"}', r"line 2: field 'labels' holds \"x\|y\", not a list of label names"),
        ('{"text": "a", "labels": [1]}', r"line 2: field 'labels' holds \[1\], not a list"),
    ],
)
def test_bad_json_lines_are_one_line_errors_naming_the_line(tmp_path, line, message):
    path = _jsonl(tmp_path / "bad.jsonl", LINES[:1], [line])
    with pytest.raises(InputError, match=message):
        read_labelled_csv(path)


def test_an_empty_json_lines_file_and_one_hot_columns_are_refused(tmp_path):
    with pytest.raises(InputError, match="the file is empty; a JSON Lines file holds one object per line"):
        read_labelled_csv(write_csv(tmp_path / "empty.jsonl", ""))
    with pytest.raises(InputError, match="--label-columns is for one-hot CSV columns"):
        read_labelled_csv(_jsonl(tmp_path / "d.jsonl", LINES), CSVFormat(label_columns=("a",)))


def test_train_evaluate_and_predict_json_lines(tiny_csvs, tmp_path, capsys, monkeypatch):
    frame = pd.read_csv(tiny_csvs["train"], keep_default_na=False)
    records = [{"body": t, "tags": s.split("|")} for t, s in zip(frame["text"], frame["labels"])]
    train = _jsonl(tmp_path / "train.jsonl", records)
    fields = ["--text-column", "body", "--labels-column", "tags"]
    assert main(["train", "--model", "linear-br", "--train", train, "--out", tmp_path / "run", *fields]) == 0
    run = tmp_path / "run"
    assert main(["evaluate", "--model", run, "--data", train, "--json"]) == 0  # the fields are remembered
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["n_docs"] == len(records)

    out = tmp_path / "predicted.jsonl.gz"
    assert main(["predict", "--model", run, "--input", train, "--output", out]) == 0
    written = pd.read_json(out, lines=True)
    expected = mlgen.load(run).predict_scores(frame["text"].tolist())
    assert written["predicted_labels"].tolist() == [p.labels for p in expected]
    assert written["tags"].tolist() == [r["tags"] for r in records]  # the input's fields, as they were
    assert [len(s) for s in written["label_scores"]] == [len(p.labels) for p in expected]

    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("wheat exports rose\n\nthe bank raised its rates\n"))
    assert main(["predict", "--model", run, "--input", "-", "--chunk-size", "1"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    texts = ["wheat exports rose", "the bank raised its rates"]
    assert [line["text"] for line in lines] == texts
    assert [line["predicted_labels"] for line in lines] == mlgen.load(run).predict(texts)
    assert "predicted 2 texts (1 blank lines skipped)" in captured.err
    assert main(["predict", "--model", run, "--input", "-", "--shard", "1/2"]) == 2
    assert main(["predict", "--model", run, "--input", train]) == 2
    assert "--output is required" in capsys.readouterr().err
