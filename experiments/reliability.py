"""Bad inputs, tried as a careless or hostile user would: what mlgen answers to each.

Every case runs the real CLI (`python -m mlgen ...`) or a few lines of the Python API in
a fresh process, inside a scratch folder, and records its exit status, the last line it
printed to stderr, whether a traceback appeared, and whether the files a user owned in
that folder are all still there, unchanged. Prints a Markdown table (the one in
experiments/README.md, "Reliability") and exits 1 if any case printed a traceback or
lost a file.

    .venv/bin/python experiments/reliability.py [--cases 'gzip,model.keras'] [--json out.json]

Takes about three minutes on 2 cores (each process imports the libraries again).
"""

# ruff: noqa: E501  (the table of cases reads best one case to a line)
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mlgen import datasets

TINY = (
    "--max-tokens 1000 --sequence-length 50 --embedding-dim 16 --filter-sizes 2,3 --num-filters 16 "
    "--decoder-units 32 --label-embedding-dim 16 --epochs 2 --batch-size 32 --embeddings none --ema-momentum 0"
).split()


def _tiny_csvs(folder: Path) -> None:
    """train.csv (300 Reuters documents, top 8 labels, 50 words) and test.csv (80)."""
    frame = datasets.load("reuters21578", "train")
    top = set(frame["labels"].explode().value_counts().index[:8])
    frame["labels"] = frame["labels"].map(lambda labels: [label for label in labels if label in top])
    frame = frame[frame["labels"].map(len) > 0].head(380)
    frame = frame.assign(
        text=frame["text"].map(lambda t: " ".join(t.split()[:50])), labels=frame["labels"].map("|".join)
    )
    frame.head(300).to_csv(folder / "train.csv", index=False)
    frame.tail(80).to_csv(folder / "test.csv", index=False)


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def _copy_run(src: str, dst: str):
    def setup(d: Path):
        shutil.copytree(d / src, d / dst)

    return setup


def _edit_json(folder: str, name: str, change):
    def setup(d: Path):
        path = d / folder / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return setup


def _in_rules(decision: dict, **values) -> dict:
    """`decision.json` (format 2) with `values` set in every rule that has those fields."""
    rules = {
        name: {**rule, **{k: v for k, v in values.items() if k in rule}} for name, rule in decision["rules"].items()
    }
    return {**decision, "rules": rules}


def _then(*steps):
    def setup(d: Path):
        for step in steps:
            step(d)

    return setup


def _gz_flipped(d: Path):
    data = bytearray(gzip.compress((d / "train.csv").read_bytes()))
    data[len(data) // 2] ^= 0xFF
    _write(d / "bad.csv.gz", bytes(data))


def _keras_bit_flip(d: Path):
    path = d / "flip" / "model.keras"
    with zipfile.ZipFile(path) as archive:
        offset = max(archive.infolist(), key=lambda i: i.file_size).header_offset
    data = bytearray(path.read_bytes())
    data[offset + 200] ^= 0x01
    path.write_bytes(bytes(data))


def _project(d: Path):
    """The issue's folder: a user's project that happens to hold a config.json."""
    _write(d / "proj" / "config.json", "{}")
    _write(d / "proj" / "src" / "main.py", "print('mine')\n")
    shutil.copy(d / "train.csv", d / "proj" / "data.csv")


# (area, case, setup or None, argv for `mlgen` or Python code after "py:", files the user owns)
CASES = [
    ("output", "`--out` a project folder holding a `config.json`, its own code and the training CSV", _project,
     "train --model linear-br --train proj/data.csv --out proj", ["proj/config.json", "proj/src/main.py", "proj/data.csv"]),
    ("output", "the same folder, training CSV elsewhere", _project,
     "train --model linear-br --train train.csv --out proj", ["proj/config.json", "proj/src/main.py", "proj/data.csv"]),
    ("output", "`--out` an earlier run folder of mlgen's", _copy_run("linear", "again"),
     "train --model linear-br --train train.csv --out again", []),
    ("output", "`--out` an earlier run folder plus a user's notes.txt",
     _then(_copy_run("linear", "noted"), lambda d: _write(d / "noted" / "notes.txt", "mine")),
     "train --model linear-br --train train.csv --out noted", ["noted/notes.txt"]),
    ("output", "`--out .` in a working folder", None, "train --model linear-br --train train.csv --out .", ["train.csv"]),
    ("output", "`--out` a file", lambda d: _write(d / "file.txt", "mine"),
     "train --model linear-br --train train.csv --out file.txt", ["file.txt"]),
    ("output", "`--out` below a file (checked before training)", lambda d: _write(d / "file.txt", "mine"),
     "train --train train.csv --out file.txt/run", ["file.txt"]),
    ("output", "`compare --out` a folder with a `results.csv` and a user's thesis",
     lambda d: (_write(d / "cmp" / "results.csv", "model\n"), _write(d / "cmp" / "thesis.tex", "ch. 1")),
     "compare --train train.csv --test test.csv --models linear-br --seeds 1 --out cmp", ["cmp/thesis.tex"]),
    ("output", "`save()` into a folder holding a user's file", lambda d: _write(d / "mine" / "keep.txt", "keep"),
     "py:import mlgen; mlgen.load('linear').save('mine')", ["mine/keep.txt"]),
    ("output", "staging folder and partial file left by a killed run (`kill -9`)",
     lambda d: (_write(d / ".again2.tmp-4000000-x" / "config.json", "{}"), _write(d / ".tmp-4000000-o.csv", "x")),
     "py:import mlgen, os; mlgen.load('linear').save('again2'); "
     "from mlgen import artifacts; artifacts.atomic_file('o.csv').__enter__(); "
     "assert not [p for p in os.listdir('.') if '4000000' in p], os.listdir('.'); print('cleaned up')", []),
    ("output", "a swap cut between its two renames: only `.run.old-PID` is left", _then(
        _copy_run("linear", ".cut.old-4000000")), "train --model linear-br --train train.csv --out cut", []),
    ("numbers", "`--learning-rate nan`", None, "train --train train.csv --out x --learning-rate nan", []),
    ("numbers", "`--learning-rate inf`", None, "train --train train.csv --out x --learning-rate inf", []),
    ("numbers", "`--dropout nan`", None, "train --train train.csv --out x --dropout nan", []),
    ("numbers", "`--C nan`", None, "train --model linear-br --train train.csv --out x --C nan", []),
    ("numbers", "`--seed 99999999999`", None, "train --model linear-br --train train.csv --out x --seed 99999999999", []),
    ("numbers", "a loss that becomes NaN (`--learning-rate 1e30 --clipnorm 0`) over a good run",
     _copy_run("rnn", "good"), f"train --train train.csv --out good {' '.join(TINY)} --learning-rate 1e30 --clipnorm 0",
     ["good/model.keras", "good/config.json"]),
    ("numbers", "`--beam-size 0`", None, "predict --model rnn --input test.csv --output o.csv --beam-size 0", []),
    ("one label", "every document has the one label `earn`",
     lambda d: _write(d / "one.csv", "text,labels\n" + "".join(f"doc {i} about earnings,earn\n" for i in range(60))),
     f"train --train one.csv --out one {' '.join(TINY)}", []),
    ("one label", "one label or none (`--allow-empty-labels`), compared over all three models",
     lambda d: _write(d / "oneempty.csv", "text,labels\n" + "".join(
         f"doc {i} {'profit' if i % 2 else 'weather'} news,{'earn' if i % 2 else ''}\n" for i in range(80))),
     f"compare --train oneempty.csv --test oneempty.csv --seeds 1 --out cmp1 --allow-empty-labels {' '.join(TINY)}", []),
    ("no documents", "linear-br `predict([])`", None, "py:import mlgen; print(mlgen.load('linear').predict([]))", []),
    ("no documents", "`predict --chunk-size 1` on a file with blank lines",
     lambda d: _write(d / "blank.csv", "text\nwheat\n\n\ncorn\n"),
     "predict --model rnn --input blank.csv --output o.csv --chunk-size 1", []),
    ("no documents", "`evaluate --drop-invalid` on a file whose rows are all dropped",
     lambda d: _write(d / "dropped.csv", "text,labels\n,earn\n ,acq\n"),
     "evaluate --model rnn --data dropped.csv --drop-invalid", []),
    ("no documents", "`fit([], [])`", None, "py:import mlgen; mlgen.LabelSequenceClassifier().fit([], [])", []),
    ("compressed", "a gzip with a flipped byte", _gz_flipped, "train --model linear-br --train bad.csv.gz --out x", []),
    ("compressed", "a truncated gzip", lambda d: _write(d / "cut.csv.gz", gzip.compress((d / "train.csv").read_bytes())[:5000]),
     "train --model linear-br --train cut.csv.gz --out x", []),
    ("compressed", "a `.zip` that is not a zip", lambda d: _write(d / "bad.csv.zip", b"PK\x03\x04junk" * 20),
     "train --model linear-br --train bad.csv.zip --out x", []),
    ("compressed", "an `.xz` that is not xz", lambda d: _write(d / "bad.csv.xz", b"\xfd7zXZ\x00junk" * 20),
     "train --model linear-br --train bad.csv.xz --out x", []),
    ("compressed", "a `.bz2` that is not bz2", lambda d: _write(d / "bad.csv.bz2", b"junk" * 20),
     "train --model linear-br --train bad.csv.bz2 --out x", []),
    ("run folder", "`model.keras` with one flipped bit in the weights", _then(_copy_run("rnn", "flip"), _keras_bit_flip),
     "predict --model flip --input test.csv --output o.csv", []),
    ("run folder", "`model.keras` with a flipped byte", _then(_copy_run("rnn", "flip2"), lambda d: _flip(d / "flip2/model.keras")),
     "predict --model flip2 --input test.csv --output o.csv", []),
    ("run folder", "a truncated `model.keras`", _then(_copy_run("rnn", "cut2"), lambda d: (d / "cut2/model.keras").write_bytes(
        (d / "cut2/model.keras").read_bytes()[:5000])), "evaluate --model cut2 --data test.csv", []),
    ("run folder", "`config.json` not JSON", _then(_copy_run("linear", "c1"), lambda d: _write(d / "c1/config.json", "{")),
     "predict --model c1 --input test.csv --output o.csv", []),
    ("run folder", "`config.json` a list", _then(_copy_run("linear", "c2"), lambda d: _write(d / "c2/config.json", "[]")),
     "evaluate --model c2 --data test.csv", []),
    ("run folder", "`config.json` with `\"C\": \"high\"`",
     _then(_copy_run("linear", "c3"), _edit_json("c3", "config.json", lambda c: {**c, "baseline": {**c["baseline"], "C": "high"}})),
     "evaluate --model c3 --data test.csv", []),
    ("run folder", "`config.json` with an unknown model type",
     _then(_copy_run("linear", "c4"), _edit_json("c4", "config.json", lambda c: {**c, "model_type": "svm"})),
     "evaluate --model c4 --data test.csv", []),
    ("run folder", "`config.json` says cnn-br, `model.keras` is a cnn-rnn",
     _then(_copy_run("rnn", "c5"), _edit_json("c5", "config.json", lambda c: {**c, "model_type": "cnn-br"}),
           lambda d: _write(d / "c5/thresholds.json", '{"threshold": 0.5}')),
     "evaluate --model c5 --data test.csv", []),
    ("run folder", "`config.json` says linear-br, the folder holds `model.keras`",
     _then(_copy_run("rnn", "c6"), _edit_json("c6", "config.json", lambda c: {**c, "model_type": "linear-br"})),
     "evaluate --model c6 --data test.csv", []),
    ("run folder", "no `metrics.json` / `history.json`",
     _then(_copy_run("linear", "m1"), lambda d: ((d / "m1/metrics.json").unlink(), (d / "m1/history.json").unlink())),
     "evaluate --model m1 --data test.csv | grep micro_f1", []),
    ("run folder", "no `label_vocab.json`", _then(_copy_run("linear", "v1"), lambda d: (d / "v1/label_vocab.json").unlink()),
     "evaluate --model v1 --data test.csv", []),
    ("run folder", "`label_vocab.json` with `\"labels\": \"earn\"`",
     _then(_copy_run("linear", "v2"), lambda d: _write(d / "v2/label_vocab.json", '{"labels": "earn"}')),
     "evaluate --model v2 --data test.csv", []),
    ("run folder", "no `thresholds.json`", _then(_copy_run("linear", "t1"), lambda d: (d / "t1/thresholds.json").unlink()),
     "evaluate --model t1 --data test.csv", []),
    ("run folder", "`thresholds.json` with one threshold for 8 labels",
     _then(_copy_run("linear", "t2"), lambda d: _write(d / "t2/thresholds.json", '{"threshold": [0.1]}')),
     "evaluate --model t2 --data test.csv", []),
    ("run folder", "no `linear.npz`", _then(_copy_run("linear", "n1"), lambda d: (d / "n1/linear.npz").unlink()),
     "evaluate --model n1 --data test.csv", []),
    ("run folder", "`linear.npz` truncated", _then(_copy_run("linear", "n2"), lambda d: (d / "n2/linear.npz").write_bytes(
        (d / "n2/linear.npz").read_bytes()[:300])), "evaluate --model n2 --data test.csv", []),
    ("run folder", "a folder that is not a run", lambda d: (d / "empty").mkdir(), "evaluate --model empty --data test.csv", []),
    ("output path", "`predict --output` a folder (checked before the work)", lambda d: (d / "outdir").mkdir(),
     "predict --model rnn --input test.csv --output outdir", []),
    ("output path", "`predict --output` the input file", None,
     "predict --model linear --input test.csv --output test.csv", ["test.csv"]),
    ("output path", "`evaluate --per-label` a folder", lambda d: (d / "outdir2").mkdir(),
     "evaluate --model rnn --data test.csv --per-label outdir2", []),
    ("output path", "`explain --out` without an image suffix", None, "explain --model rnn --text wheat --out why", []),
    ("python", "`fit` with a label set of `None`", None,
     "py:import mlgen; mlgen.LabelSequenceClassifier().fit(['a', 'b'], [['x'], None])", []),
    ("python", "`fit` with `dev_texts` but no `dev_label_sets`", None,
     "py:import mlgen; mlgen.LabelSequenceClassifier().fit(['a'], [['x']], dev_texts=['b'])", []),
    ("python", "`fit` with an empty text", None, "py:import mlgen; mlgen.LabelSequenceClassifier().fit([''], [['x']])", []),
    ("python", "`fit` with an empty label set", None,
     "py:import mlgen; mlgen.LabelSequenceClassifier().fit(['a', 'b'], [['x'], []])", []),
    ("python", "`fit` with `' earn '` and `'earn'`", None,
     "py:from mlgen.data import from_lists; print(from_lists(['a'], [[' earn ', 'earn']], 'fit data').label_sets)", []),
    ("python", "`predict` with a lone surrogate `'\\ud800'`", None, "py:import mlgen; mlgen.load('rnn').predict(['\\ud800'])", []),
    ("python", "`predict` with `beam_size=2.5`", None, "py:import mlgen; mlgen.load('rnn').predict(['wheat'], beam_size=2.5)", []),
    ("silent", "a latin-1 model predicting a UTF-8 file", lambda d: (
        _write(d / "latin.csv", (d / "train.csv").read_text().replace("the ", "café ").encode("latin-1")),
        _write(d / "utf8.csv", "text\ncafé prices rose\n")),
     "train --model linear-br --train latin.csv --encoding latin-1 --out latin && "
     "mlgen predict --model latin --input utf8.csv --output o.csv && cut -d, -f1 o.csv | tail -1", []),
    ("silent", "`evaluate --labels-column labels` on a model trained on one-hot columns", lambda d: _write(
        d / "onehot.csv", "text,earn,acq\n" + "".join(f"doc {i} profit,{i % 2},{1 - i % 2}\n" for i in range(40)))
     , "train --model linear-br --train onehot.csv --label-columns earn,acq --out onehot && "
       "mlgen evaluate --model onehot --data test.csv --labels-column labels | grep micro_f1", []),
    ("csv", "no labels column", lambda d: _write(d / "nolabels.csv", "text,tags\na,b\n"),
     "train --train nolabels.csv --out x", []),
    ("csv", "an empty file", lambda d: _write(d / "empty.csv", ""), "train --train empty.csv --out x", []),
    ("csv", "a header and no rows", lambda d: _write(d / "header.csv", "text,labels\n"), "train --train header.csv --out x", []),
    ("csv", "a latin-1 file read as UTF-8", lambda d: _write(d / "l1.csv", "text,labels\ncafé,x\n".encode("latin-1")),
     "train --train l1.csv --out x", []),
    ("csv", "a row with too many fields", lambda d: _write(d / "fields.csv", "text,labels\na,b\nc,d,e,f\n"),
     "train --train fields.csv --out x", []),
    ("csv", "empty label cells", lambda d: _write(d / "nolab.csv", "text,labels\na,x\nb,\n"), "train --train nolab.csv --out x", []),
    ("csv", "one-hot cell `yes`", lambda d: _write(d / "oh.csv", "text,a,b\nx,1,0\ny,0,yes\n"),
     "train --train oh.csv --label-columns a,b --out x", []),
    ("csv", "`--encoding klingon`", None, "train --train train.csv --encoding klingon --out x", []),
    # Issue 25: a second round.
    ("numbers", "`--beam-size 1000000000`", None, "predict --model rnn --input test.csv --output o.csv --beam-size 1000000000", []),
    ("numbers", "`--max-labels 1000000000`", None, "predict --model rnn --input test.csv --output o.csv --max-labels 1000000000", []),
    ("numbers", "`export --beam-size 1000000000`", None, "export --model rnn --out exp --beam-size 1000000000", []),
    ("numbers", "`predict --chunk-size 1000000000000`", None,
     "predict --model linear --input test.csv --output o.csv --chunk-size 1000000000000", []),
    ("run folder", "`decision.json` with `\"beam_size\": 1000000000`",
     _then(_copy_run("rnn", "d1"), _edit_json("d1", "decision.json", lambda c: _in_rules(c, beam_size=1000000000))),
     "predict --model d1 --input test.csv --output o.csv", []),
    ("run folder", "no `decision.json` (cnn-rnn)", _then(_copy_run("rnn", "d2"), lambda d: (d / "d2/decision.json").unlink()),
     "predict --model d2 --input test.csv --output o.csv", []),
    ("run folder", "`decision.json` with `\"linear_weight\": 1e308`",
     _then(_copy_run("rnn", "d3"), _edit_json("d3", "decision.json", lambda c: _in_rules(c, linear_weight=1e308))),
     "evaluate --model d3 --data test.csv", []),
    ("run folder", "`thresholds.json` with `\"threshold\": NaN`",
     _then(_copy_run("linear", "t3"), lambda d: _write(d / "t3/thresholds.json", '{"threshold": NaN}')),
     "evaluate --model t3 --data test.csv", []),
    ("run folder", "`config.json` with `\"beam_size\": 1000000000`",
     _then(_copy_run("rnn", "c7"), _edit_json("c7", "config.json", lambda c: {**c, "model": {**c["model"], "beam_size": 1000000000}})),
     "predict --model c7 --input test.csv --output o.csv", []),
    ("run folder", "a cnn-rnn ensemble folder without `linear.npz`", _then(_copy_run("rnn", "n3"), lambda d: (d / "n3/linear.npz").unlink()),
     "evaluate --model n3 --data test.csv", []),
    ("output", "`--out` inside a symlink loop", lambda d: ((d / "la").symlink_to(d / "lb"), (d / "lb").symlink_to(d / "la")),
     "train --model linear-br --train train.csv --out la/run", []),
    ("python", "`set_params(C=-1)` then `fit`", None,
     "py:import mlgen; mlgen.LinearBinaryRelevanceClassifier().set_params(C=-1).fit(['a b', 'c d'], [['x'], ['y']])", []),
    ("python", "`pickle` round trip of a fitted cnn-rnn estimator", None,
     "py:import pickle, mlgen; c = mlgen.LabelSequenceClassifier(epochs=1, max_tokens=100, embeddings=None, ensemble='none', decision='mode').fit(['wheat rose', 'oil fell'] * 20, [['grain'], ['crude']] * 20); "
     "print(pickle.loads(pickle.dumps(c)).predict(['wheat rose']) == c.predict(['wheat rose']))", []),
    ("jsonl", "a JSON Lines text holding an escaped lone surrogate `\"\\ud800\"`",
     lambda d: _write(d / "sur.jsonl", '{"text": "wheat \\ud800 rose", "labels": ["earn"]}\n'),
     "predict --model linear --input sur.jsonl --output o.jsonl", []),
    ("jsonl", "JSON Lines training labels holding an escaped lone surrogate",
     lambda d: _write(d / "surl.jsonl", '{"text": "wheat rose", "labels": ["e\\udc80"]}\n'),
     "train --model linear-br --train surl.jsonl --out x", []),
    ("jsonl", "later JSON Lines lines add a field (`id`), `--chunk-size 2`, CSV output read back",
     lambda d: _write(d / "grow.jsonl", '{"text": "wheat rose"}\n{"text": "oil fell", "id": 5}\n{"text": "corn", "id": 6}\n'),
     "predict --model linear --input grow.jsonl --output g.csv --chunk-size 2 && cut -d, -f2 g.csv | paste -sd' '", []),
    ("jsonl", "`predict --input -` with bytes that are not UTF-8",
     lambda d: _write(d / "bad.txt", b"wheat rose\nx \xed\xa0\x80 y\n"),
     "predict --model linear --input - < bad.txt", []),
    ("messages", "`--train` a folder of CSV shards", lambda d: _write(d / "shards" / "a.csv", (d / "train.csv").read_text()),
     "train --model linear-br --train shards --out x", ["shards/a.csv"]),
    ("messages", "`evaluate` over a glob of shards, a label the model lacks in the second",
     lambda d: (_write(d / "ev" / "a.csv", "text,labels\nwheat rose,grain\n"),
                _write(d / "ev" / "b.csv", "text,labels\ncorn prices,grain\ncocoa fell,cocoa-new\n")),
     "evaluate --model linear --data 'ev/*.csv' --json 2>&1 >/dev/null | grep misses", []),
    ("streaming", "a training file grows by a row between the checking pass and the records pass", None,
     "py:import sys; from mlgen.cli import main, common; real = common.stream.scan; "
     "common.stream.scan = lambda *a, **k: (real(*a, **k), open('train.csv', 'a').write('a new row,earn\\n'))[0]; "
     "sys.exit(main(['train', '--train', 'train.csv', '--stream', '--out', 'x', '--epochs', '1', '--embeddings', 'none']))", []),
    ("streaming", "TMPDIR full while the training records are written (`RLIMIT_FSIZE` of 2 kB)", None,
     "py:import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); from mlgen.cli import main; "
     "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
     "sys.exit(main(['train', '--train', 'train.csv', '--stream', '--out', 'x', '--epochs', '1', '--embeddings', 'none']))", ["train.csv"]),
    ("streaming", "SIGTERM during streamed training: the records folder in TMPDIR", lambda d: (d / "tmp").mkdir(),
     "py:import glob, os, signal, subprocess, sys, time; "
     "p = subprocess.Popen([sys.executable, '-m', 'mlgen', 'train', '--train', 'train.csv', '--stream', '--out', 'x', '--epochs', '500', '--patience', '500', '--embeddings', 'none', '--verbose', '0'], env={**os.environ, 'TMPDIR': os.path.abspath('tmp')}, stderr=subprocess.PIPE, text=True); "
     "[time.sleep(0.1) for _ in range(1200) if not glob.glob('tmp/mlgen-records-*/chunk-*') and p.poll() is None]; "
     "time.sleep(1); p.send_signal(signal.SIGTERM); err = p.communicate(timeout=120)[1]; "
     "print(err.strip().splitlines()[-1], '(exit', p.returncode, ') left in TMPDIR:', os.listdir('tmp'))", []),
    ("streaming", "records left in TMPDIR by a streamed run killed with `kill -9`, beside a look-alike folder of the user's",
     lambda d: (_write(d / "tmp" / "mlgen-records-4000000-abcdefgh" / "chunk-000000.tfrecord", b"x"),
                _write(d / "tmp" / "mlgen-records-4000000-mynotes0" / "notes.txt", "mine")),
     "py:import os, sys, tempfile; tempfile.tempdir = os.path.abspath('tmp'); from mlgen.cli import main; "
     "code = main(['train', '--train', 'train.csv', '--stream', '--out', 'x', '--epochs', '1', '--embeddings', 'none', '--verbose', '0']); "
     "print('exit', code, 'left in TMPDIR:', sorted(os.listdir('tmp')))", ["tmp/mlgen-records-4000000-mynotes0/notes.txt"]),
    ("streaming", "`--workers 2` with a last batch of one document (300 rows, `--batch-size 299`; oneDNN on)", None,
     "py:import os, sys; os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1'; from mlgen.cli import main; "
     "sys.exit(main(['train', '--model', 'cnn-br', '--train', 'train.csv', '--dev', 'test.csv', '--out', 'x', '--workers', '2', '--batch-size', '299', '--epochs', '1', '--embeddings', 'none', '--ensemble', 'none']))", ["train.csv"]),
    ("workers", "`TF_CONFIG='{not json'`", None,
     "py:import os, sys; os.environ['TF_CONFIG'] = '{not json'; from mlgen.cli import main; sys.exit(main(['train', '--train', 'train.csv', '--out', 'x']))", []),
    ("workers", "`TF_CONFIG='[1,2]'`", None,
     "py:import os, sys; os.environ['TF_CONFIG'] = '[1,2]'; from mlgen.cli import main; sys.exit(main(['train', '--train', 'train.csv', '--out', 'x']))", []),
    ("workers", "`TF_CONFIG` naming a worker that never comes up (`MLGEN_CLUSTER_TIMEOUT=5`)", None,
     "py:import os, sys; os.environ.update(MLGEN_CLUSTER_TIMEOUT='5', TF_CONFIG='{\"cluster\": {\"worker\": [\"127.0.0.1:23456\", \"127.0.0.1:1\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'); from mlgen.cli import main; sys.exit(main(['train', '--model', 'cnn-br', '--train', 'train.csv', '--out', 'x', '--ensemble', 'none']))", []),
    ("workers", "`--workers 1000`", None, "train --train train.csv --out x --workers 1000", []),
    ("workers", "`mlgen train --workers 2` killed with SIGKILL while training: its workers", None,
     "py:import glob, os, signal, subprocess, sys, time; "
     "p = subprocess.Popen([sys.executable, '-m', 'mlgen', 'train', '--model', 'cnn-br', '--train', 'train.csv', '--out', 'killed', '--workers', '2', '--epochs', '500', '--patience', '500', '--embeddings', 'none', '--ensemble', 'none', '--verbose', '0'], stderr=subprocess.DEVNULL); "
     "[time.sleep(0.5) for _ in range(480) if not glob.glob('.killed.tmp-*/logs') and p.poll() is None]; "
     "p.send_signal(signal.SIGKILL); p.wait(); "
     "left = lambda: [a for a in subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True).stdout.splitlines() if '--out killed' in a and 'ps -eo' not in a]; "
     "[time.sleep(0.5) for _ in range(60) if left()]; print('workers left 30 s after the parent was killed:', len(left()))", []),
]  # fmt: skip


def run_case(folder: Path, case) -> dict:
    area, name, setup, command, owned = case
    if setup is not None:
        setup(folder)
    before = {p: (folder / p).read_bytes() for p in owned}
    mlgen = f"{sys.executable} -m mlgen"
    if command.startswith("py:"):
        # An InputError is the API's answer to bad input: print it as the CLI would.
        code = (
            "import sys\nfrom mlgen.errors import InputError\ntry:\n"
            f"    exec({command[3:]!r})\nexcept InputError as err:\n"
            "    print(f'{type(err).__name__}: {err}', file=sys.stderr)\n    sys.exit(2)\n"
        )
        argv = [sys.executable, "-c", code]
    else:
        argv = ["bash", "-c", f'mlgen() {{ {mlgen} "$@"; }}; mlgen {command}']
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in (result.stderr.strip() + "\n" + result.stdout.strip()).splitlines() if line.strip()]
    errors = [line for line in result.stderr.splitlines() if line.startswith(("mlgen: error:", "InputError:"))]
    shown = errors[-1] if errors else (result.stdout.strip().splitlines() or lines or [""])[-1]
    kept = all((folder / p).is_file() and (folder / p).read_bytes() == data for p, data in before.items())
    return {
        "area": area,
        "case": name,
        "command": command,
        "exit": result.returncode,
        "traceback": "Traceback" in result.stderr,
        "kept": kept,
        "outcome": shown.replace(str(folder) + "/", "").strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", help="comma-separated words; only cases whose description holds one of them")
    parser.add_argument("--json", help="also write the records here")
    args = parser.parse_args()
    cases = CASES
    if args.cases:
        words = [w.strip() for w in args.cases.split(",")]
        cases = [c for c in CASES if any(w in c[1] or w in c[3] for w in words)]
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        base.mkdir()
        _tiny_csvs(base)
        mlgen = [sys.executable, "-m", "mlgen"]
        subprocess.run([*mlgen, "train", "--model", "linear-br", "--train", "train.csv", "--out", "linear"],
                       cwd=base, check=True, capture_output=True)  # fmt: skip
        subprocess.run([*mlgen, "train", "--train", "train.csv", "--out", "rnn", "--verbose", "0", *TINY],
                       cwd=base, check=True, capture_output=True)  # fmt: skip
        for i, case in enumerate(cases):
            folder = Path(scratch) / f"case{i}"
            shutil.copytree(base, folder)
            records.append(run_case(folder, case))
            print(f"{i + 1}/{len(cases)} {case[1]}: exit {records[-1]['exit']}", file=sys.stderr, flush=True)
    print("| area | bad input | outcome | exit | traceback | user files kept |")
    print("|---|---|---|---|---|---|")
    for r in records:
        outcome = r["outcome"].replace("|", "\\|")
        print(f"| {r['area']} | {r['case']} | {outcome} | {r['exit']} | {'**yes**' if r['traceback'] else 'no'} | "
              f"{'yes' if r['kept'] else '**no**'} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    sys.exit(1 if any(r["traceback"] or not r["kept"] for r in records) else 0)


if __name__ == "__main__":
    main()
