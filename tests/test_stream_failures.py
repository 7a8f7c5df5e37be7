"""Streamed training when things go wrong (issue 25): a training file that changes between the
checking pass and the records pass, a full TMPDIR, SIGTERM and SIGKILL during training (the
records folder), and a final batch too small to give every worker a share."""

import gzip
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import TINY_FLAGS, write_csv

from mlgen.cli import main
from mlgen.data import stream
from mlgen.errors import InputError

GOOD = "text,labels\nwheat rose,grain\nbanks lend,money|interest\noil fell,crude\n"


def _flags(drop=(), **changes):
    """`TINY_FLAGS` with some values changed and the flags in `drop` (with their values) left out."""
    flags = list(TINY_FLAGS)
    for flag, value in changes.items():
        flags[flags.index(f"--{flag.replace('_', '-')}") + 1] = str(value)
    for flag in drop:
        del flags[flags.index(flag) : flags.index(flag) + 2]
    return flags


@pytest.fixture
def shards(tiny_shards, tmp_path):
    """A private copy of the tiny shards (tests change them); returns their glob."""
    folder = tmp_path / "shards"
    folder.mkdir()
    for path in sorted(Path(tiny_shards).parent.glob("part-*.csv.gz")):
        shutil.copy(path, folder / path.name)
    return str(folder / "part-*.csv.gz")


@pytest.fixture
def tmpdir_(tmp_path, monkeypatch):
    """TMPDIR for this process: a fresh folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _records(folder: Path) -> list[Path]:
    return sorted(folder.glob("mlgen-records-*"))


# A training file that changes after the checking pass.


def test_a_file_that_changes_after_the_scan_is_named(tmp_path):
    path = write_csv(tmp_path / "a.csv", GOOD)
    train, _ = stream.scan(path, dev_fraction=None)
    assert sum(len(chunk) for chunk in train.chunks()) == 3  # unchanged: read again as it was

    # One row more (a new size).
    write_csv(path, GOOD + "gold shines,gold\n")
    with pytest.raises(InputError) as grown:
        list(train.chunks())
    assert str(grown.value).startswith(f"{path}: changed since training checked it (")
    assert "\n" not in str(grown.value)

    # One row fewer in the very same bytes and modification time: the count of documents tells.
    write_csv(path, GOOD)
    train, _ = stream.scan(path, dev_fraction=None)
    stat = path.stat()
    merged = GOOD.replace("interest\noil fell,crude\n", "interest oil fell crude\n")
    assert len(merged) == len(GOOD)
    write_csv(path, merged)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(InputError, match=r"3 training documents when checked, 2 now"):
        list(train.chunks())

    path.unlink()
    with pytest.raises(InputError, match=rf"^{path}: cannot be read any more"):
        list(train.chunks())


def test_train_names_a_shard_that_grew_after_the_scan(shards, tmpdir_, tmp_path, monkeypatch, capsys):
    """Before: a `FailedPreconditionError` traceback at the end of the first epoch."""
    from mlgen.cli import common

    real_scan, changed = stream.scan, Path(shards).parent / "part-1.csv.gz"

    def scan_then_append(*args, **kwargs):
        scanned = real_scan(*args, **kwargs)
        changed.write_bytes(gzip.compress(gzip.decompress(changed.read_bytes()) + b"a new row,earn\n"))
        return scanned

    monkeypatch.setattr(common.stream, "scan", scan_then_append)
    argv = ["train", "--train", shards, "--stream", "--out", tmp_path / "run", *_flags(epochs=1)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"mlgen: error: {changed}: changed since training checked it (")
    assert "Traceback" not in err and err.count("mlgen: error") == 1
    assert not _records(tmpdir_) and not (tmp_path / "run").exists()


# A full TMPDIR.


def test_a_full_tmpdir_is_one_line_saying_where_and_how_much(shards, tmpdir_, tmp_path, monkeypatch):
    """The writer fails as TensorFlow's does on a full disk (`ResourceExhaustedError`, ENOSPC)
    at the third chunk: the error names the folder, what was written and what all would need."""
    import keras
    import tensorflow as tf

    from mlgen.data.vocab import LabelVocabulary
    from mlgen.nn import preprocessing

    train, _ = stream.scan(shards, dev_fraction=0.2, chunksize=50)
    chunks = list(train.chunks())
    real_writer, opened = tf.io.TFRecordWriter, []

    class FillingWriter(real_writer):
        def write(self, record):
            if len(opened) == 3:
                raise tf.errors.ResourceExhaustedError(None, None, f"{opened[-1]}; No space left on device")
            super().write(record)

        def __init__(self, path, options=None):
            opened.append(path)
            super().__init__(path, options)

    monkeypatch.setattr(preprocessing.tf.io, "TFRecordWriter", FillingWriter)
    vocab = LabelVocabulary.from_counts(train.summary.label_counts)
    vectorizer = keras.layers.TextVectorization(max_tokens=100, output_sequence_length=20)
    preprocessing.adapt_vectorizer(vectorizer, train.sample.texts)
    with pytest.raises(InputError) as full:
        preprocessing.write_records(vectorizer, train, vocab, tmpdir_)
    written = sum(os.path.getsize(p) for p in opened[:2])
    docs = len(chunks[0]) + len(chunks[1])
    message = str(full.value)
    assert message == (
        f"{tmpdir_}: the training records do not fit (No space left on device): {written / 2**20:,.1f} MiB written "
        f"for {docs:,} of {len(train):,} documents, about {written * len(train) / docs / 2**20:,.1f} MiB for all; "
        "free space there or set TMPDIR to a folder with more room"
    )


def test_train_with_a_file_size_limit_on_tmpdir_stops_with_one_line(shards, tmpdir_, tmp_path, capsys):
    """A real write failure: `RLIMIT_FSIZE` (writes fail with EFBIG, `OutOfRangeError` in TensorFlow)."""
    import resource

    argv = ["train", "--train", shards, "--stream", "--out", tmp_path / "run", *_flags(epochs=1)]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, hard))
    try:
        code = main(argv)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    line = err.splitlines()[-1]
    assert line.startswith(f"mlgen: error: {tmpdir_}/mlgen-records-{os.getpid()}-")
    assert "the training records do not fit (File too large): nothing written yet" in line and "Traceback" not in err
    assert not _records(tmpdir_)  # the partial records went with their folder


# The records folder: named for its process, removed on SIGTERM, and by the next run after SIGKILL.


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_the_records_folder_names_its_process_and_dead_ones_are_removed(tmpdir_):
    from mlgen.nn import preprocessing

    dead = _dead_pid()
    left = tmpdir_ / f"mlgen-records-{dead}-abcd_123"
    left.mkdir()
    (left / "chunk-000000.tfrecord").write_bytes(b"x")
    empty = tmpdir_ / f"mlgen-records-{dead}-zzzzzzzz"  # killed before its first chunk
    empty.mkdir()
    # Not mlgen's: another file inside, a name that only looks alike, a file, a live process's folder.
    kept = [tmpdir_ / f"mlgen-records-{dead}-users000", tmpdir_ / f"mlgen-records-{dead}-toolongname"]
    kept += [tmpdir_ / "mlgen-records-abc-abcdefgh", tmpdir_ / f"mlgen-records-{os.getppid()}-abcdefgh"]
    for folder in kept:
        folder.mkdir()
        (folder / "chunk-000000.tfrecord").write_bytes(b"x")
    (kept[0] / "notes.txt").write_text("mine")
    (tmpdir_ / f"mlgen-records-{dead}-aaaaaaaa").write_text("a file")
    with preprocessing.records_folder() as folder:
        assert Path(folder).parent == tmpdir_
        assert Path(folder).name.startswith(f"mlgen-records-{os.getpid()}-")
        assert not left.exists() and not empty.exists()
        assert all(folder.exists() for folder in kept) and (kept[0] / "notes.txt").read_text() == "mine"
        assert (tmpdir_ / f"mlgen-records-{dead}-aaaaaaaa").is_file()
        assert preprocessing.remove_dead_records(tmpdir_) == []  # its own folder stays while it runs
    assert not Path(folder).exists()


def _train_until_records(shards, tmp_path, env_tmp: Path) -> subprocess.Popen:
    """Starts a streamed `mlgen train` (TMPDIR=env_tmp) that would run for minutes, and returns
    once its records folder holds a chunk (the run is then writing records or training)."""
    argv = ["train", "--train", shards, "--stream", "--out", str(tmp_path / "run"), "--verbose", "0"]
    argv += _flags(epochs=500) + ["--patience", "500"]
    env = {**os.environ, "TMPDIR": str(env_tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "mlgen", *argv], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(folder.glob("chunk-*") for folder in _records(env_tmp)):
            return process
        time.sleep(0.05)
    process.kill()
    _, err = process.communicate(timeout=30)
    pytest.fail(f"no records folder appeared (exit {process.returncode}): {err[-2000:]}")


def test_sigterm_during_streamed_training_removes_the_records(shards, tmp_path):
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    process = _train_until_records(shards, tmp_path, env_tmp)
    try:
        assert _records(env_tmp)[0].name.startswith(f"mlgen-records-{process.pid}-")
        time.sleep(1)  # into the records pass or training
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 143, err[-2000:]
    assert "Traceback" not in err
    assert not _records(env_tmp)


def test_after_sigkill_the_next_streamed_run_removes_the_records(shards, tmp_path, tmpdir_):
    from mlgen.nn import preprocessing

    process = _train_until_records(shards, tmp_path, tmpdir_)
    left = _records(tmpdir_)
    try:
        process.kill()
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert [folder.exists() for folder in left] == [True]  # SIGKILL: nothing could clean up
    with preprocessing.records_folder() as folder:  # what the next streamed run makes first
        assert _records(tmpdir_) == [Path(folder)]


# Several workers: a last batch too small to give every worker a share.


def test_two_workers_train_when_a_last_batch_leaves_a_worker_no_document(shards, tiny_csvs, tmp_path):
    """380 streamed training documents in batches of 379 leave a last batch of one, and a dev file
    of one document a dev batch of one: each would give worker 1 an empty share, which oneDNN's
    kernels (on here by `TF_ENABLE_ONEDNN_OPTS=1`, as on CPUs with AVX-512) cannot take
    (before: `InvalidArgumentError` in worker 1's convolution)."""
    dev = tmp_path / "dev.csv"
    dev.write_text("".join(Path(tiny_csvs["dev"]).read_text().splitlines(keepends=True)[:2]))
    out = tmp_path / "run"
    # oneDNN takes the convolutions of 50-d embeddings (not of the tiny 16-d ones).
    flags = _flags(
        ("--decoder-units", "--label-embedding-dim", "--decision"), epochs=1, batch_size=379, embedding_dim=50
    )
    command = [sys.executable, "-m", "mlgen", "train", "--model", "cnn-br", "--train", shards, "--stream"]
    command += ["--dev", dev, "--out", out, "--workers", "2", "--verbose", "0", *flags]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "380 training documents" in result.stderr and f"saved {out}" in result.stdout
