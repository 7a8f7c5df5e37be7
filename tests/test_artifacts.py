"""Run folders on disk: what mlgen may replace, what it cleans up, and damaged folders
that must give one line naming the file, never a traceback."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import mlgen
from mlgen import artifacts, compare, registry
from mlgen.cli import main
from mlgen.data import read_labelled_csv
from mlgen.errors import InputError

DEAD_PID = 4_000_000  # above Linux's pid_max: never a running process


@pytest.fixture(scope="module")
def linear_folder(tiny_csvs, tmp_path_factory):
    """A linear-br run folder (no TensorFlow needed)."""
    predictor = registry.fit("linear-br", read_labelled_csv(tiny_csvs["train"]), verbose=0)
    folder = tmp_path_factory.mktemp("runs") / "linear"
    predictor.save(folder)
    return folder


def _one_line_error(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error:") and err.count("\n") == 1, err
    return err


# --- 1. Nothing a user owns is replaced -----------------------------------------------------------


def test_train_never_deletes_a_users_folder_that_happens_to_hold_a_config_json(tiny_csvs, tmp_path, capsys):
    # The reproduction: `config.json` alone used to make any folder replaceable.
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text("{}")
    (project / "src" / "main.py").write_text("x")
    shutil.copy(tiny_csvs["train"], project / "data.csv")
    err = _one_line_error(["train", "--model", "linear-br", "--train", project / "data.csv", "--out", project], capsys)
    assert "holds the input file" in err
    assert sorted(p.name for p in project.iterdir()) == ["config.json", "data.csv", "src"]
    assert (project / "src" / "main.py").read_text() == "x"
    # With the input elsewhere, the user's files still stop it.
    err = _one_line_error(["train", "--model", "linear-br", "--train", tiny_csvs["train"], "--out", project], capsys)
    assert "holds files mlgen did not write (data.csv, src)" in err
    assert (project / "src" / "main.py").read_text() == "x" and (project / "data.csv").exists()


def test_a_run_folder_with_a_users_file_added_is_not_replaced(linear_folder, tiny_csvs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(linear_folder, run)
    assert main(["train", "--model", "linear-br", "--train", tiny_csvs["train"], "--out", run]) == 0  # mlgen's own
    capsys.readouterr()
    (run / "notes.txt").write_text("mine")
    err = _one_line_error(["train", "--model", "linear-br", "--train", tiny_csvs["train"], "--out", run], capsys)
    assert "notes.txt" in err
    assert (run / "notes.txt").read_text() == "mine" and mlgen.load(run).predict(["wheat"])


def test_a_config_json_not_written_by_mlgen_is_not_a_run_folder(tmp_path):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "cnn-rnn"}')
    with pytest.raises(InputError, match="is not an mlgen run folder"):
        artifacts.check_out_dir(folder)
    assert (folder / "config.json").exists()


def test_save_refuses_a_folder_with_other_files(linear_folder, tmp_path):
    predictor = mlgen.load(linear_folder)
    (tmp_path / "keep.txt").write_text("keep")
    with pytest.raises(InputError, match=r"holds files mlgen did not write \(keep.txt\)"):
        predictor.save(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_compare_never_replaces_a_folder_that_only_holds_a_results_csv(tiny_csvs, tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / compare.RESULTS).write_text("model\n")
    (out / "thesis.tex").write_text("chapter 1")
    argv = ["compare", "--train", tiny_csvs["train"], "--test", tiny_csvs["test"], "--models", "linear-br"]
    err = _one_line_error([*argv, "--seeds", "1", "--out", out], capsys)
    assert "mlgen compare folder" in err or "thesis.tex" in err
    assert (out / "thesis.tex").read_text() == "chapter 1"
    shutil.rmtree(out)
    assert main([*argv, "--seeds", "1", "--out", out]) == 0
    assert main([*argv, "--seeds", "1", "--out", out]) == 0  # its own folder is replaced


def test_out_below_a_file_fails_before_any_work(tiny_csvs, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    err = _one_line_error(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "file.txt" / "run"], capsys)
    assert "is below" in err and "which is a file" in err
    assert "read" not in err  # refused before the CSV was read


# --- Leftovers of interrupted runs ----------------------------------------------------------------


def test_what_a_killed_run_left_is_cleaned_up_on_the_next_write(linear_folder, tmp_path):
    run = tmp_path / "run"
    stale_staging = tmp_path / f".run.tmp-{DEAD_PID}-abc"
    stale_staging.mkdir()
    (stale_staging / "config.json").write_text("{}")
    stale_old = tmp_path / f".run.old-{DEAD_PID}"
    stale_old.mkdir()
    stale_file = tmp_path / f".tmp-{DEAD_PID}-out.csv"
    stale_file.write_text("partial")
    live = tmp_path / f".run.tmp-{os.getppid()}-xyz"  # a running process: left alone
    live.mkdir()
    user = tmp_path / ".run.tmp-notes"  # not a name mlgen makes
    user.write_text("mine")

    # `.run.old-PID` while `run` is missing is the previous run: moved back, not deleted.
    (stale_old / "config.json").write_text(json.dumps({"mlgen_version": mlgen.__version__}))
    mlgen.load(linear_folder).save(run)
    assert not stale_staging.exists() and not stale_old.exists()
    assert live.exists() and user.read_text() == "mine"
    with artifacts.atomic_file(tmp_path / "out.csv") as partial:
        partial.write_text("done")
    assert not stale_file.exists() and (tmp_path / "out.csv").read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".run.tmp-notes", live.name, "out.csv", "run"])


def test_an_interrupted_swap_gets_the_previous_run_back(linear_folder, tmp_path):
    previous = tmp_path / f".run.old-{DEAD_PID}"
    shutil.copytree(linear_folder, previous)
    assert artifacts.clean_interrupted(tmp_path / "run") == []
    assert mlgen.load(tmp_path / "run").predict(["wheat"]) == mlgen.load(linear_folder).predict(["wheat"])


# --- 2. Damaged run folders: one line naming the folder and the file -------------------------------


def _damage(folder, name, content):
    path = folder / name
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("config.json", "{not json", "config.json is not valid JSON"),
        ("config.json", "[1, 2]", "config.json holds a list, not the dict mlgen writes"),
        ("config.json", '{"model_type": 3}', "config.json has model_type 3"),
        ("config.json", '{"model_type": "svm", "mlgen_version": "x"}', "unknown model type 'svm'"),
        ("label_vocab.json", None, "label_vocab.json is missing"),
        ("label_vocab.json", '{"labels": "earn"}', "label_vocab.json is not a label vocabulary"),
        ("thresholds.json", None, "thresholds.json is missing"),
        ("thresholds.json", '{"threshold": "high"}', 'thresholds.json has "threshold": "high", not a finite'),
        ("thresholds.json", '{"threshold": [0.1]}', "thresholds.json needs 8 numbers, one per label"),
        ("linear.npz", None, "linear.npz is missing (model type linear-br)"),
        ("linear.npz", b"PK\x03\x04 truncated", "linear.npz is damaged"),
    ],
)
def test_a_damaged_linear_run_folder_names_the_file(linear_folder, tmp_path, capsys, name, content, expected):
    folder = tmp_path / "damaged"
    shutil.copytree(linear_folder, folder)
    _damage(folder, name, content)
    with pytest.raises(InputError, match="damaged") as info:
        mlgen.load(folder)
    assert expected in str(info.value) and "\n" not in str(info.value)
    err = _one_line_error(["predict", "--model", folder, "--input", "in.csv", "--output", tmp_path / "o.csv"], capsys)
    assert expected in err


def test_a_bad_config_value_names_the_file_and_the_field(linear_folder, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(linear_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["baseline"]["C"] = "high"
    (folder / "config.json").write_text(json.dumps(config))
    # Named as the file names it (a key and its value), not as a CLI flag.
    with pytest.raises(
        InputError, match=r"damaged: config.json has a bad 'baseline' value \(\"C\": \"high\": must be a number"
    ):
        mlgen.load(folder)


def test_missing_metrics_and_history_still_load(linear_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(linear_folder, folder)
    (folder / "metrics.json").unlink()
    (folder / "history.json").unlink()
    assert mlgen.load(folder).metrics == {}


def test_a_linear_npz_of_other_shapes_is_refused(linear_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(linear_folder, folder)
    with np.load(folder / "linear.npz") as arrays:
        arrays = dict(arrays)
    arrays["coef"] = arrays["coef"][:3]
    np.savez(folder / "linear.npz", **arrays)
    with pytest.raises(InputError, match="linear.npz has arrays of shapes"):
        mlgen.load(folder)


def _flip_a_byte(path, at=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: _flip_a_byte(p), "model.keras is damaged"),
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "model.keras is damaged"),
        (lambda p: p.unlink(), "model.keras is missing (model type cnn-rnn)"),
    ],
    ids=["bit-flip", "truncated", "missing"],
)
def test_a_damaged_model_keras_names_the_file(tiny_run, tmp_path, damage, expected):
    _, run = tiny_run
    folder = tmp_path / "damaged"
    shutil.copytree(run, folder)
    damage(folder / "model.keras")
    with pytest.raises(InputError) as info:
        mlgen.load(folder)
    assert expected in str(info.value) and "older mlgen" not in str(info.value)


def test_a_config_whose_model_type_does_not_match_its_files(tiny_run, linear_folder, tmp_path):
    _, run = tiny_run
    folder = tmp_path / "mixed"
    shutil.copytree(run, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "cnn-br"}))
    (folder / "thresholds.json").write_text('{"threshold": 0.5}')
    with pytest.raises(InputError, match="config.json says model type cnn-br, but model.keras holds a LabelSequence"):
        mlgen.load(folder)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "linear-br"}))
    with pytest.raises(InputError, match=r"linear.npz is missing .*it holds model.keras instead"):
        mlgen.load(folder)


def test_a_bit_flipped_model_keras_is_caught_by_its_crc(tiny_run, tmp_path):
    _, run = tiny_run
    folder = tmp_path / "flipped"
    shutil.copytree(run, folder)
    with zipfile.ZipFile(folder / "model.keras") as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)  # the weights
    data = bytearray((folder / "model.keras").read_bytes())
    data[info.header_offset + 200] ^= 0x01  # one bit inside the weights' bytes
    (folder / "model.keras").write_bytes(bytes(data))
    with pytest.raises(InputError, match="model.keras is damaged"):
        mlgen.load(folder)


# --- Output paths are checked before the work -----------------------------------------------------


def test_predict_output_that_is_a_folder_fails_before_loading(linear_folder, tiny_csvs, tmp_path, capsys):
    err = _one_line_error(["predict", "--model", linear_folder, "--input", tiny_csvs["test"], "--output", tmp_path],
                          capsys)  # fmt: skip
    assert "is a folder; --output needs a file path" in err


def test_evaluate_per_label_that_is_a_folder_fails_first(linear_folder, tiny_csvs, tmp_path, capsys):
    argv = ["evaluate", "--model", linear_folder, "--data", tiny_csvs["test"], "--per-label", tmp_path]
    assert "is a folder; --per-label needs a file path" in _one_line_error(argv, capsys)


def test_explain_out_without_an_image_suffix_fails_first_and_leaves_nothing(tiny_run, tmp_path, capsys):
    _, run = tiny_run
    err = _one_line_error(["explain", "--model", run, "--text", "wheat", "--out", tmp_path / "why"], capsys)
    assert "--out needs an image file name ending in .png" in err
    assert list(tmp_path.iterdir()) == []


def test_predict_output_below_a_file(linear_folder, tiny_csvs, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    argv = ["predict", "--model", linear_folder, "--input", tiny_csvs["test"], "--output", tmp_path / "f" / "o.csv"]
    assert "which is a file, not a folder" in _one_line_error(argv, capsys)


def test_predict_on_a_damaged_folder_prints_no_traceback(linear_folder, tiny_csvs, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(linear_folder, folder)
    (folder / "config.json").write_text("{")
    result = subprocess.run(
        [sys.executable, "-m", "mlgen", "predict", "--model", folder, "--input", tiny_csvs["test"], "--output",
         tmp_path / "o.csv"], capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "config.json is not valid JSON" in result.stderr
