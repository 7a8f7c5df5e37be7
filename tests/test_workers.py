"""Clusters that fail: a worker that never comes up, a killed parent or worker, a bad TF_CONFIG, too many workers.

Every process test has hard timeouts, kills what it started when it fails, and checks in /proc that
no process is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_FLAGS

from mlgen.cli import main

# TINY_FLAGS without cnn-rnn's own flags: the cheapest network, a cnn-br.
CNN_BR = ["--model", "cnn-br"]
for _flag, _value in zip(TINY_FLAGS[::2], TINY_FLAGS[1::2], strict=True):
    if _flag not in ("--decoder-units", "--label-embedding-dim", "--decision"):
        CNN_BR += [_flag, _value]
MLGEN = [sys.executable, "-m", "mlgen"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_until(condition, seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _kill(*pids: int) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_worker_that_never_comes_up_is_named_after_a_bounded_wait_and_sigterm_ends_the_wait(tiny_csvs, tmp_path):
    # Two single workers of two clusters whose other worker never comes up, started together:
    # `late` (worker 0) waits MLGEN_CLUSTER_TIMEOUT=5 s, `waiting` (worker 1) the default, and is sent SIGTERM.
    late_ports, waiting_ports = _free_ports(2), _free_ports(2)
    argv = [*MLGEN, "train", "--train", str(tiny_csvs["train"]), "--out", str(tmp_path / "run"), *CNN_BR]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLGEN_CLUSTER_TIMEOUT", None)
    started = []
    try:
        late = subprocess.Popen(
            argv,
            env={**env, "TF_CONFIG": _tf_config(late_ports, 0), "MLGEN_CLUSTER_TIMEOUT": "5"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(late.pid)
        waiting = subprocess.Popen(
            argv,
            env={**env, "TF_CONFIG": _tf_config(waiting_ports, 1)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(waiting.pid)
        begun = time.monotonic()
        # Worker 1 answers at its address while it waits for worker 0, which never comes.
        assert _wait_until(lambda: _answers(waiting_ports[1]), 120), "worker 1 never started waiting"
        waiting.send_signal(signal.SIGTERM)
        _, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 143, err[-2000:]
        assert err.strip().splitlines()[-1] == "mlgen: terminated"
        _, err = late.communicate(timeout=120)
        assert late.returncode == 2, err[-2000:]
        lines = err.strip().splitlines()
        assert lines == [
            f"mlgen: error: worker 1 (127.0.0.1:{late_ports[1]}) did not answer within 5 s: start the same "
            "command there with its TF_CONFIG (or set MLGEN_CLUSTER_TIMEOUT to wait longer)"
        ]
        assert time.monotonic() - begun < 120
    finally:
        _kill(*started)
    assert not [pid for pid in started if _alive(pid)]
    assert not (tmp_path / "run").exists()


def test_killing_the_parent_of_local_workers_stops_them(tiny_csvs, tmp_path):
    out = tmp_path / "run"
    command = [*MLGEN, "train", "--train", str(tiny_csvs["train"]), "--dev", str(tiny_csvs["dev"]), "--out", str(out)]
    command += ["--workers", "2", "--verbose", "0", *CNN_BR, "--epochs", "100", "--patience", "100"]
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        # The chief's staging folder appears once the cluster is up and training starts.
        assert _wait_until(lambda: any(tmp_path.glob(".run.tmp-*")), 180), "training never started"
        workers = _children(parent.pid)
        assert len(workers) == 2
        time.sleep(1)
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_until(lambda: not any(_alive(pid) for pid in workers), 30), "workers outlived their parent"
    finally:
        _kill(parent.pid, *workers)
        parent.wait(timeout=10)
    assert not out.exists()


@pytest.fixture
def fake_workers(monkeypatch):
    """`run_workers` starts, instead of mlgen, the Python code given for each worker (a list to fill)."""
    from mlgen.cli import train

    codes, started, real_popen = [], [], subprocess.Popen

    def popen(command, **kwargs):
        started.append(real_popen([sys.executable, "-c", codes[len(started)]], **kwargs))
        return started[-1]

    monkeypatch.setattr(train.subprocess, "Popen", popen)
    monkeypatch.setattr(train, "STOP_GRACE_SECONDS", 2.0, raising=False)  # absent before the fix
    yield codes, started
    for worker in started:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_killed_worker_is_named_and_the_chief_is_stopped_with_sigterm_to_clean_up(
    fake_workers, tiny_csvs, tmp_path, capsys
):
    codes, started = fake_workers
    cleaned = tmp_path / "cleaned"
    codes += [  # the chief cleans up on SIGTERM; worker 1 is killed after a moment
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(cleaned)!r}, 'w').close(), sys.exit(143)))\n"
        "time.sleep(60)",
        "import os, signal, time; print('Epoch 1/2', flush=True); time.sleep(0.5)\n"
        "os.kill(os.getpid(), signal.SIGKILL)",
    ]
    begun = time.perf_counter()
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", "--workers", "2"]) == 2
    assert time.perf_counter() - begun < 30
    assert capsys.readouterr().err == "mlgen: error: worker 1 was killed by SIGKILL; the other workers were stopped\n"
    assert cleaned.exists()  # SIGTERM first, not SIGKILL
    assert [worker.returncode for worker in started] == [143, -signal.SIGKILL]
    assert not [worker.pid for worker in started if _alive(worker.pid)]


def test_a_chief_that_fails_first_is_named_with_its_error_and_a_worker_ignoring_sigterm_is_killed(
    fake_workers, tiny_csvs, tmp_path, capsys
):
    codes, started = fake_workers
    codes += [
        "import sys, time; print('read 300 documents', file=sys.stderr); time.sleep(0.5)\n"
        "print('mlgen: error: train.csv: no labels', file=sys.stderr); sys.exit(2)",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
    ]
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "read 300 documents\n"  # the chief's other lines pass through as they come
        "mlgen: error: worker 0 (the chief) exited with status 2: train.csv: no labels; "
        "the other workers were stopped\n"
    )
    assert [worker.returncode for worker in started] == [2, -signal.SIGKILL]  # after the grace period
    assert not [worker.pid for worker in started if _alive(worker.pid)]


def test_more_workers_than_the_machine_holds_are_refused_with_the_reason(tiny_csvs, tmp_path, capsys, monkeypatch):
    from mlgen.cli import train

    monkeypatch.setattr(train.subprocess, "Popen", lambda *a, **k: pytest.fail("a worker was started"))
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", "--workers", "1000"]) == 2
    err = capsys.readouterr().err
    cores = len(os.sched_getaffinity(0))
    assert err.startswith(f"mlgen: error: --workers 1000: this machine has {cores} CPU core")
    assert "room for at most" in err and "GiB" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ("{not json", "TF_CONFIG is not JSON (Expecting property name enclosed in double quotes at character 2)"),
        ("[1,2]", "TF_CONFIG: expected a JSON object, got a list"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', '"cluster"."worker" must be'),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}', '"cluster"."worker"[1]'),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "from 0 to 1"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", "index": 0}}', '"task"."type" must be'),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker"}}', 'job "ps" is not supported'),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "a:1 is named twice"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', '"task" is missing'),
    ],
)
def test_a_malformed_tf_config_is_one_line_saying_what_it_should_look_like(
    tf_config, message, tiny_csvs, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert main(["train", "--train", tiny_csvs["train"], "--out", tmp_path / "run", *CNN_BR]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlgen: error: ") and message in err and err.count("\n") == 1
    assert err.rstrip().endswith('it should look like {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                                 '"worker", "index": 0}}')  # fmt: skip
