"""The command line: errors without tracebacks, and train -> evaluate -> predict end to end."""

import gzip
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import TINY_FLAGS, write_csv

import mlgen
from mlgen.cli import main


def mlgen_cli(*args):
    """Runs `python -m mlgen ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "mlgen", *map(str, args)], capture_output=True, text=True)


def test_train_on_a_csv_without_labels_column_names_the_columns(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", "text,tags\nhello,x\n")
    result = mlgen_cli("train", "--train", bad, "--out", tmp_path / "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mlgen: error:") and result.stderr.count("\n") == 1
    assert "columns found: text, tags" in result.stderr and str(bad) in result.stderr
    assert not (tmp_path / "run").exists()


def test_help_and_the_csv_reader_do_not_import_tensorflow(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,labels\na,x\n")
    code = (
        "import sys; from mlgen.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"import mlgen; mlgen.read_labelled_csv({str(path)!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: mlgen" in result.stdout


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--dataset", "reuters21578", "--train", "x.csv", "--out", "o"], "either --dataset or --train"),
        (["train", "--dev", "x.csv", "--out", "o"], "--dev goes with --train"),
        (["train", "--train", "missing.csv", "--out", "o"], "missing.csv: no such file"),
        (["evaluate", "--model", "nowhere"], "not an mlgen run folder"),
        (["train", "--label-sep", "", "--train", "x.csv", "--out", "o"], "--label-sep is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_train_refuses_to_overwrite_a_folder_that_is_not_a_run(tiny_csvs, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["train", "--train", tiny_csvs["train"], "--out", str(tmp_path), *TINY_FLAGS]) == 2
    assert "holds files mlgen did not write (keep.txt)" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_bad_flag_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--out", "o", "--filter-sizes", "2,x"])
    assert info.value.code == 2
    assert "comma-separated whole numbers" in capsys.readouterr().err


def test_train_evaluate_predict_end_to_end(tiny_csvs, tmp_path, capsys):
    run = tmp_path / "run"
    # The training file has one invalid row: dropped on request, and counted.
    # Its own column names and label separator: evaluate and predict remember them.
    own_format = ["--text-column", "body", "--labels-column", "tags", "--label-sep", ";"]

    def rewrite(path, name):
        frame = pd.read_csv(path, keep_default_na=False).rename(columns={"text": "body", "labels": "tags"})
        frame["tags"] = frame["tags"].str.replace("|", ";")
        frame.to_csv(tmp_path / name, sep="\t" if name.endswith(".tsv") else ",", index=False)
        return tmp_path / name, frame

    train_path, train = rewrite(tiny_csvs["train"], "train.tsv")
    train.loc[5, "body"] = ""
    train.to_csv(train_path, sep="\t", index=False)
    dev_path, _ = rewrite(tiny_csvs["dev"], "dev.csv")
    test_path, _ = rewrite(tiny_csvs["test"], "test.csv")
    argv = ["train", "--train", train_path, "--dev", dev_path, "--out", run, "--drop-invalid", *own_format]
    assert main([*argv, *TINY_FLAGS]) == 0
    out = capsys.readouterr()
    assert "dropped 1 invalid rows: 1 empty text (data rows 6)" in out.err
    assert f"saved {run}" in out.out
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["csv_format"]["drop_invalid"] is True
    assert config["data"]["train_docs"] == 299

    assert main(["evaluate", "--model", run, "--data", test_path, "--json"]) == 0
    remembered = json.loads(capsys.readouterr().out)
    # Flags given override the remembered format: the original file, scored the same.
    default_format = ["--text-column", "text", "--labels-column", "labels", "--label-sep", "|"]
    assert main(["evaluate", "--model", run, "--data", tiny_csvs["test"], "--json", *default_format]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {
        "micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy",
        "micro_precision", "micro_recall", "n_docs", "P@1", "P@3", "P@5", "nDCG@3", "nDCG@5",
    }  # fmt: skip
    assert scores["n_docs"] == 80 and 0.0 <= scores["micro_f1"] <= 1.0
    assert scores == remembered

    assert main(["evaluate", "--model", run, "--data", test_path]) == 0
    assert "micro_f1" in capsys.readouterr().out

    output = tmp_path / "out" / "predicted.csv"
    assert main(["predict", "--model", run, "--input", tiny_csvs["test"], "--output", output, "--chunk-size", "30",
                 "--beam-size", "2", "--text-column", "text"]) == 0  # fmt: skip
    predicted = pd.read_csv(output, keep_default_na=False, dtype=str)
    original = pd.read_csv(tiny_csvs["test"], keep_default_na=False)
    assert len(predicted) == 80 and list(predicted.columns) == ["text", "labels", "predicted_labels", "label_scores"]
    assert predicted["text"].tolist() == original["text"].tolist()
    for labels, scores in zip(predicted["predicted_labels"], predicted["label_scores"]):
        assert len(labels.split(";")) == len(scores.split(";")) >= 1  # the remembered separator
    import mlgen

    expected = mlgen.load(run).predict(original["text"].tolist(), beam_size=2)
    assert predicted["predicted_labels"].tolist() == [";".join(p) for p in expected]


def test_evaluate_reports_unknown_gold_labels(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    data = write_csv(tmp_path / "d.csv", "text,labels\nwheat prices rose,never-seen|earn\n")
    assert main(["evaluate", "--model", str(run), "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    assert "'never-seen'" in captured.err and "count as misses" in captured.err
    assert json.loads(captured.out)["unknown_gold_labels"] == 1


def test_python_dash_m_mlgen_version():
    result = mlgen_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("mlgen ")


def _linear_run(train, out, *flags):
    assert main(["train", "--model", "linear-br", "--train", train, "--out", out, *flags]) == 0
    return out


def test_a_latin1_model_reads_utf8_input_as_utf8_never_as_mojibake(tiny_csvs, tmp_path, capsys):
    frame = pd.read_csv(tiny_csvs["train"], keep_default_na=False)
    frame["text"] = "caf\u00e9 " + frame["text"]
    frame.to_csv(tmp_path / "train.csv", index=False, encoding="latin-1")
    run = _linear_run(tmp_path / "train.csv", tmp_path / "run", "--encoding", "latin-1")
    for encoding in ("utf-8", "latin-1"):
        source, out = tmp_path / f"in-{encoding}.csv", tmp_path / f"out-{encoding}.csv"
        frame.head(5)[["text"]].to_csv(source, index=False, encoding=encoding)
        capsys.readouterr()
        assert main(["predict", "--model", run, "--input", source, "--output", out]) == 0
        note = "valid UTF-8, so read as UTF-8, not as the model's training encoding latin-1"
        assert (note in capsys.readouterr().err) == (encoding == "utf-8")
        written = pd.read_csv(out, keep_default_na=False)  # mlgen writes UTF-8
        assert written["text"].tolist() == frame.head(5)["text"].tolist()
    assert main(["predict", "--model", run, "--input", source, "--output", out, "--encoding", "utf-8"]) == 2


def test_labels_column_given_now_wins_over_remembered_one_hot_columns(tiny_csvs, tmp_path, capsys):
    frame = pd.read_csv(tiny_csvs["train"], keep_default_na=False)
    labels = sorted({label for cell in frame["labels"] for label in cell.split("|")})
    one_hot = frame[["text"]].assign(**{label: frame["labels"].map(lambda c, x=label: int(x in c.split("|")))
                                        for label in labels})  # fmt: skip
    one_hot.to_csv(tmp_path / "one_hot.csv", index=False)
    run = _linear_run(tmp_path / "one_hot.csv", tmp_path / "run", "--label-columns", ",".join(labels))
    capsys.readouterr()
    argv = ["evaluate", "--model", run, "--data", tiny_csvs["test"], "--json"]
    assert main([*argv, "--labels-column", "labels"]) == 0
    assert json.loads(capsys.readouterr().out)["n_docs"] == 80
    assert main(argv) == 2  # the remembered one-hot columns are not in this file
    err = capsys.readouterr().err
    assert "no one-hot label columns" in err and "--labels-column" in err


def test_predict_with_chunks_in_which_no_row_is_valid(tiny_run, tiny_csvs, tmp_path, capsys):
    _, cnn_rnn = tiny_run
    linear = _linear_run(tiny_csvs["train"], tmp_path / "linear")
    source = write_csv(tmp_path / "in.csv", "text\nwheat exports\n\n\nbank rates rose\n")
    for run in (cnn_rnn, linear):
        out = tmp_path / f"out-{run.name}.csv"
        assert main(["predict", "--model", run, "--input", source, "--output", out, "--chunk-size", "1"]) == 0
        assert "wrote 2 rows" in capsys.readouterr().out
        assert pd.read_csv(out)["text"].tolist() == ["wheat exports", "bank rates rose"]
    assert mlgen.load(linear).predict([]) == [] and mlgen.load(cnn_rnn).predict([]) == []


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_predict_shards_concatenate_to_the_whole_output(tiny_csvs, tmp_path, capsys, suffix):
    linear = _linear_run(tiny_csvs["train"], tmp_path / "linear")
    frame = pd.read_csv(tiny_csvs["test"], keep_default_na=False).head(20)
    lines = "\n".join(frame["text"].map(lambda t: '"' + t.replace('"', '""') + '"'))
    source = write_csv(tmp_path / "in.csv", "text\n" + lines.replace("\n", "\n\n", 1) + "\n")  # row 2 blank
    whole = tmp_path / f"whole{suffix}"
    argv = ["predict", "--model", linear, "--input", source, "--chunk-size", "3"]
    assert main([*argv, "--output", whole]) == 0
    for num_shards in (1, 3, 7, 30):
        parts = [tmp_path / f"part-{k}-of-{num_shards}{suffix}" for k in range(1, num_shards + 1)]
        for k, part in enumerate(parts, 1):
            assert main([*argv, "--output", part, "--shard", f"{k}/{num_shards}"]) == 0
        assert f"part {num_shards}/{num_shards}: data rows" in capsys.readouterr().out
        joined = b"".join(part.read_bytes() for part in parts)
        if suffix.endswith(".gz"):
            joined, expected = gzip.decompress(joined), gzip.decompress(whole.read_bytes())
        else:
            expected = whole.read_bytes()
        assert joined == expected, num_shards


@pytest.mark.parametrize("shard", ["3/2", "0/4", "1", "a/b", "1/0"])
def test_a_bad_shard_is_one_line(tiny_csvs, tmp_path, capsys, shard):
    argv = ["predict", "--model", tmp_path, "--input", tiny_csvs["test"], "--output", tmp_path / "o.csv"]
    assert main([*argv, "--shard", shard]) == 2
    err = capsys.readouterr().err
    assert "--shard" in err and err.count("\n") == 1


def test_evaluate_of_a_file_whose_rows_were_all_dropped(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    source = write_csv(tmp_path / "d.csv", "text,labels\n,earn\n \t,acq\n")
    argv = ["evaluate", "--model", run, "--data", source, "--drop-invalid"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "read 0 documents, dropped 2 invalid rows" in err


def _environ_without_tf_logging(**extra):
    import os

    return {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, **extra}


def _tensorflow_lines(stderr: str) -> list[str]:
    """TensorFlow's C++ log lines (`I0000 00:00:... port.cc:153] ...`, W, E and F alike) and absl's notice."""
    return [line for line in stderr.splitlines() if re.match(r"[IWEF]\d{4} ", line) or "absl::InitializeLog" in line]


# oneDNN's custom operations are on by default only on some CPUs (those with AVX-512, for
# example), and then TensorFlow prints its notice whatever TF_CPP_MIN_LOG_LEVEL says.
# TF_ENABLE_ONEDNN_OPTS=1 turns them on here too, so these tests hold on every x86-64 CPU.
ONEDNN_ON = {"TF_ENABLE_ONEDNN_OPTS": "1"}


def test_commands_quiet_tensorflows_start_up_logging(tiny_run, tiny_csvs):
    _, folder = tiny_run
    command = [sys.executable, "-m", "mlgen", "evaluate", "--model", str(folder), "--data", str(tiny_csvs["test"])]
    result = subprocess.run(command, capture_output=True, text=True, env=_environ_without_tf_logging(**ONEDNN_ON))
    assert result.returncode == 0, result.stderr
    assert _tensorflow_lines(result.stderr) == [], result.stderr
    assert "micro_f1" in result.stdout


def test_the_onednn_notice_is_printed_and_taken_out_at_level_3():
    """The control for the test above: with oneDNN on, TensorFlow's import prints its notice
    (whatever the level), and at level 3 mlgen takes it out and writes back all else."""
    env = _environ_without_tf_logging(TF_CPP_MIN_LOG_LEVEL="3", **ONEDNN_ON)
    code = (
        "import builtins, sys\n"
        "print('python says', file=sys.stderr)\n"
        "real_import, printed = builtins.__import__, []\n"
        "def loud_import(name, *args, **kwargs):\n"
        "    if name == 'keras' and not printed:  # inside the import mlgen quiets\n"
        "        printed.append(print('printed during the import', file=sys.stderr))\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = loud_import\n"
        "import mlgen.nn\n"
        "print('after', file=sys.stderr)\n"
        "print('\\n'.join(mlgen.nn.quieted_lines))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert any("oneDNN custom operations are on" in line for line in _tensorflow_lines(result.stdout)), result.stdout
    assert result.stderr == "python says\nprinted during the import\nafter\n"


@pytest.mark.parametrize("user_level, expected", [(None, "3"), ("0", "0")])
def test_tf_cpp_min_log_level_set_by_the_user_brings_the_logging_back(user_level, expected):
    env = _environ_without_tf_logging()
    if user_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = user_level
    code = "import os; from mlgen.cli import main; main(['evaluate', '--model', 'nowhere']); "
    code += "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.stdout.strip() == expected


def test_info_describes_a_run_folder_without_loading_it(tiny_run, capsys):
    from pathlib import Path

    _, run = tiny_run
    assert main(["info", "--model", run]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{run}: cnn-rnn, written by mlgen {mlgen.__version__} (python ")
    assert "keras 3." in out and "labels: 8 (" in out and "dev: micro_f1 " in out
    assert re.search(r"^  decoder_units +32$", out, re.M) and "train:" in out.splitlines()
    assert main(["info", "--model", run, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_type"] == "cnn-rnn" and info["labels"] == mlgen.load(run).labels and info["num_labels"] == 8
    assert info["hyperparameters"]["model"]["decoder_units"] == 32 and info["versions"]["keras"].startswith("3.")
    assert info["dev"] == json.loads((run / "metrics.json").read_text())["dev"]
    old = Path(__file__).parent / "fixtures" / "runs_0.2.0" / "linear-br"
    assert main(["info", "--model", old]) == 0
    assert "linear-br, written by mlgen 0.2.0 (not recorded)" in capsys.readouterr().out
    assert main(["info", "--model", run.parent]) == 2
    assert "not an mlgen run folder" in capsys.readouterr().err


def test_predict_and_evaluate_report_progress_unless_quiet(tiny_csvs, tmp_path, capsys, monkeypatch):
    from mlgen import progress

    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)  # every input is "long"
    monkeypatch.setattr(progress, "LOG_SECONDS", 0.0)
    linear = _linear_run(tiny_csvs["train"], tmp_path / "linear")
    capsys.readouterr()
    argv = ["predict", "--model", linear, "--input", tiny_csvs["test"], "--output", tmp_path / "p.csv"]
    assert main([*argv, "--chunk-size", "30"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("30 of 80 rows (38%), ") and " left" in err[0] and err[-1].startswith("80 of 80 rows")
    assert main([*argv, "--verbose", "0"]) == 0
    assert "rows/s" not in capsys.readouterr().err
    assert main(["evaluate", "--model", linear, "--data", tiny_csvs["test"]]) == 0
    assert "80 of 80 documents (100%)" in capsys.readouterr().err


def test_sigterm_ends_training_as_ctrl_c_does_and_leaves_nothing_behind(tiny_csvs, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "mlgen", "train", "--train", tiny_csvs["train"], "--dev", tiny_csvs["dev"]]
    argv += ["--out", out, *TINY_FLAGS, "--epochs", "200", "--patience", "200", "--verbose", "0"]
    process = subprocess.Popen(list(map(str, argv)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".run.tmp-*/logs")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        assert list(tmp_path.glob(".run.tmp-*")), "training never started"
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 143 and stderr.strip().splitlines()[-1] == "mlgen: terminated", stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # neither the run folder nor its staging folder
