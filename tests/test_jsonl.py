"""JSON Lines in and out: the one reader's rules and errors with line numbers, and `predict`'s outputs."""

import gzip
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
    with pytest.raises(InputError, match="label_columns is for one-hot CSV columns"):
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


@pytest.mark.parametrize(
    "line, message",
    [
        (
            r'{"text": "wheat \ud800 rose", "labels": ["x"]}',
            r"line 2: field 'text' holds a lone surrogate \\ud800 \(character 7\)",
        ),
        (
            r'{"text": "a", "labels": ["x", "y\udc80"]}',
            r"line 2: field 'labels' holds a lone surrogate \\udc80 \(character 2\)",
        ),
        (
            r'{"text": "a", "labels": ["x"], "id": {"k": ["\ude00"]}}',
            r"line 2: field 'id' holds a lone surrogate \\ude00 \(character 1\)",
        ),
        (
            r'{"text": "a", "labels": ["x"], "i\udbff": 1}',
            r'line 2: the field name "i\\udbff" holds a lone surrogate \\udbff \(character 2\)',
        ),
    ],
)
def test_an_escaped_lone_surrogate_is_refused_by_line_and_field(tmp_path, line, message):
    path = _jsonl(tmp_path / "bad.jsonl", LINES[:1], [line])
    for read in (read_labelled_csv, read_texts):  # train and evaluate; predict
        with pytest.raises(InputError, match=message + r", which is not Unicode text; write the character itself"):
            read(path)


def test_an_escaped_surrogate_pair_is_one_character(tmp_path):
    path = _jsonl(tmp_path / "pair.jsonl", [], [r'{"text": "smile \ud83d\ude00", "labels": ["\ud83d\ude00"]}'])
    assert read_labelled_csv(path).label_sets == [["\U0001f600"]]


# Later lines add fields, lack some, and hold values of every JSON type.
GROWING = [
    {"text": "wheat exports rose"},
    {"text": "the bank raised its rates", "id": 5},
    {"text": "crude oil fell", "id": 6, "meta": {"k": [1, 2.0]}, "flag": True, "note": None},
    {"text": "corn and grain prices", "id": 7.5, "labels": ["grain"]},
    {"note": "café", "text": "money supply grew"},
]


def _written(path):
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        return f.read()


def _same_values(text: str, suffix: str) -> str:
    """The output as its values: a CSV's bytes; JSON Lines' objects, whose fields have no order."""
    if not suffix.startswith(".jsonl"):
        return text
    return "\n".join(json.dumps(json.loads(line), sort_keys=True) for line in text.splitlines())


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".jsonl.gz"])
def test_predict_keeps_every_value_of_json_lines_whatever_the_chunking(linear_run, tmp_path, suffix):
    predictor, run = linear_run
    source = _jsonl(tmp_path / "in.jsonl", GROWING)
    expected = predictor.predict_scores([r["text"] for r in GROWING])
    outputs = []
    for chunk in (1, 2, 3, 100):
        out = tmp_path / f"out-{chunk}{suffix}"
        assert main(["predict", "--model", run, "--input", source, "--output", out, "--chunk-size", str(chunk)]) == 0
        outputs.append(_same_values(_written(out), suffix))
    parts = []
    for shard in ("1/2", "2/2"):
        out = tmp_path / f"part-{shard[0]}{suffix}"
        assert main(["predict", "--model", run, "--input", source, "--output", out, "--shard", shard]) == 0
        parts.append(_written(out))
    outputs.append(_same_values("".join(parts), suffix))
    assert len(set(outputs)) == 1  # the same output, whatever the chunking
    out = tmp_path / f"out-1{suffix}"
    if suffix.startswith(".jsonl"):
        lines = [json.loads(line) for line in _written(out).splitlines()]
        assert [line.pop("predicted_labels") for line in lines] == [p.labels for p in expected]
        assert [len(line.pop("label_scores")) for line in lines] == [len(p.labels) for p in expected]
        # Each line is its input object again: ints stay ints, a missing field stays missing, null stays null.
        assert [json.dumps(line, sort_keys=True) for line in lines] == [json.dumps(r, sort_keys=True) for r in GROWING]
        return
    written = pd.read_csv(out, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    columns = "text id meta flag note labels predicted_labels label_scores"
    assert written.columns.tolist() == columns.split()
    assert written["text"].tolist() == [r["text"] for r in GROWING]
    assert written["id"].tolist() == ["", "5", "6", "7.5", ""]
    assert written["meta"].tolist() == ["", "", '{"k": [1, 2.0]}', "", ""]
    assert written["flag"].tolist() == ["", "", "true", "", ""] and written["note"].tolist() == ["", "", "", "", "café"]
    assert written["labels"].tolist() == ["", "", "", '["grain"]', ""]
    assert written["predicted_labels"].tolist() == ["|".join(p.labels) for p in expected]


def _stdin(data: bytes):
    """Standard input as Python opens it under a C locale: bytes it cannot decode become surrogates."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")


def test_predict_from_standard_input_decodes_its_bytes_and_names_a_bad_line(linear_run, capsys, monkeypatch):
    _, run = linear_run
    monkeypatch.setattr("sys.stdin", _stdin(b"wheat rose\nx \xed\xa0\x80 y\n"))
    assert main(["predict", "--model", run, "--input", "-"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "mlgen: error: standard input: line 2 (byte 0xed) is not valid utf-8 (invalid continuation byte); "
        "pass its encoding with --encoding, e.g. --encoding latin-1"
    )
    monkeypatch.setattr("sys.stdin", _stdin("café prices\n".encode("latin-1")))
    assert main(["predict", "--model", run, "--input", "-", "--encoding", "latin-1"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "café prices"
    monkeypatch.setattr("sys.stdin", io.StringIO("fine\nx \udced\n"))  # a text stream: no bytes to decode
    assert main(["predict", "--model", run, "--input", "-"]) == 2
    assert (
        "standard input: line 2 is not valid Unicode text (a lone surrogate at character 3)" in capsys.readouterr().err
    )


def test_predict_to_a_standard_output_that_is_not_utf8_escapes_what_it_cannot_encode(linear_run, monkeypatch):
    _, run = linear_run
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr("sys.stdin", _stdin("café prices rose\n".encode()))
    monkeypatch.setattr("sys.stdout", out)
    assert main(["predict", "--model", run, "--input", "-", "--verbose", "0"]) == 0
    out.flush()
    assert json.loads(out.buffer.getvalue())["text"] == "café prices rose"
