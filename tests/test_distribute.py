"""Training on two worker processes on 127.0.0.1 (`mlgen train --workers 2`)."""

import subprocess
import sys

import pytest
from conftest import TINY_FLAGS

import mlgen
from mlgen.cli import main


def test_two_local_workers_train_a_streamed_run_folder_that_loads_and_predicts(tiny_shards, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "mlgen", "train", "--train", tiny_shards, "--stream", "--dev-fraction", "0.2"]
    command += ["--out", out, "--workers", "2", "--verbose", "0", *TINY_FLAGS]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained cnn-rnn" in result.stdout and f"saved {out}" in result.stdout
    predictor = mlgen.load(out)
    assert predictor.config["data"]["stream"]
    assert predictor.history["loss"][-1] < predictor.history["loss"][0]
    assert all(labels for labels in predictor.predict(["wheat exports rose", "the bank raised its rates"]))
    # The parent waited for both workers: none is left running.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(out) not in ps


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "linear-br", "--workers", "2"], "--workers applies to the neural models"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_workers_refused_where_they_do_not_apply(argv, message, tiny_csvs, tmp_path, capsys):
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_worker_that_fails_stops_the_others_and_says_so(tiny_csvs, tmp_path, monkeypatch, capsys):
    import time

    from mlgen.cli import train

    started, real_popen = [], subprocess.Popen

    def fake_worker(command, **kwargs):  # the chief would run a minute; worker 1 fails at once
        index = len(started)
        code = (
            "import time; time.sleep(60)"
            if index == 0
            else "import sys; print('mlgen: error: boom', file=sys.stderr); sys.exit(3)"
        )
        started.append(real_popen([sys.executable, "-c", code], **kwargs))
        return started[-1]

    monkeypatch.setattr(train.subprocess, "Popen", fake_worker)
    begun = time.perf_counter()
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", "--workers", "2"]) != 0
    assert time.perf_counter() - begun < 30  # the chief was stopped, not waited for
    assert all(worker.poll() is not None for worker in started)
    assert (
        capsys.readouterr().err == "mlgen: error: worker 1 exited with status 3: boom; the other workers were stopped\n"
    )


def test_on_several_workers_the_chief_alone_scores_dev(monkeypatch):
    """Every worker's epoch logs get the chief's dev scores; a worker that is not the chief predicts nothing."""
    from mlgen.data import LabelledData
    from mlgen.nn import distribute, training

    class Predictor:
        labels, calibrate_each_epoch, calls = ["a", "b"], False, 0

        def predict(self, texts):
            Predictor.calls += 1
            return [["a"] for _ in texts]

    dev = LabelledData(["x", "y"], [["a"], ["b"]], [1, 2], "dev")
    sent = []
    monkeypatch.setattr(distribute, "strategy", lambda: object())  # several workers
    monkeypatch.setattr(distribute, "from_chief", lambda values: sent.append(values) or [0.5, 0.25, 0.5, 0.5])
    for chief in (True, False):
        monkeypatch.setattr(distribute, "is_chief", lambda chief=chief: chief)
        logs = {}
        training.DevScoringCallback(Predictor(), dev).on_epoch_end(0, logs)
        assert logs["val_micro_f1"] == 0.5 and logs["val_macro_f1"] == 0.25
    assert Predictor.calls == 1  # the chief's
    assert sent[0] == [0.5, pytest.approx(1 / 3), 0.5, 0.5] and sent[1] == [0.0] * 4
