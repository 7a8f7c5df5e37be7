"""Streamed training input (`mlgen train --stream`): the chunked reader, the hash split,
the scan, the `tf.data` pipeline over chunks, and a streamed run folder."""

import numpy as np
import pytest
from conftest import TINY_FLAGS, TINY_MODEL, TINY_TRAIN, write_csv

import mlgen
from mlgen.cli import main
from mlgen.data import CSVFormat, LabelledData, concat, read_labelled_csv, stream
from mlgen.data.summary import DataSummary
from mlgen.errors import InputError

GOOD = "text,labels\nwheat rose,grain\nbanks lend,money|interest\noil fell,crude\n"
# Data rows 2 (empty labels), 4 (blank line) and 5 (empty text) are invalid.
BAD = "text,labels\nrates up,interest\nno labels here,\ngold shines,gold\n\n  ,grain\ncorn,grain|corn\n"


@pytest.fixture
def files(tmp_path):
    paths = [write_csv(tmp_path / "a.csv", GOOD), write_csv(tmp_path / "b.csv", BAD)]
    return paths


def _fields(data):
    return data.texts, data.label_sets, data.rows


@pytest.mark.parametrize("chunksize", [1, 2, 100])
def test_the_stream_reads_what_the_in_memory_reader_reads(files, chunksize):
    fmt = CSVFormat(drop_invalid=True)
    chunks = list(stream.read_stream(files, fmt, chunksize))
    assert all(len(chunk) <= chunksize for chunk in chunks)
    for path in files:
        whole = read_labelled_csv(path, fmt)
        streamed = concat([chunk for chunk in chunks if chunk.source == str(path)], str(path))
        assert _fields(streamed) == _fields(whole)
        assert streamed.dropped == whole.dropped
    assert read_labelled_csv(files[1], fmt).dropped == {"empty row": [4], "empty labels": [2], "empty text": [5]}


@pytest.mark.parametrize("chunksize", [1, 3, 100])
def test_the_stream_stops_at_a_bad_row_with_the_readers_error(files, chunksize):
    with pytest.raises(InputError) as whole:
        read_labelled_csv(files[1])
    with pytest.raises(InputError) as streamed:
        list(stream.read_stream(files, CSVFormat(), chunksize))
    for message in (str(whole.value), str(streamed.value)):
        assert message.startswith(f"{files[1]}: empty labels in column 'labels' at data rows 2")


def test_a_glob_names_files_in_order_and_an_empty_match_is_an_error(files, tmp_path):
    assert stream.expand(tmp_path / "*.csv") == files
    assert stream.expand(files[0]) == [files[0]]
    with pytest.raises(InputError, match=r"no file matches"):
        stream.expand(tmp_path / "*.tsv")


def _texts(n):
    return [f"document number {i}" for i in range(n)]


def test_the_hash_split_depends_on_the_text_and_seed_only():
    texts = _texts(20_000)
    split = stream.HashSplit(0.1, seed=3)
    dev = split.is_dev(texts)
    assert 0.09 < dev.mean() < 0.11
    np.testing.assert_array_equal(split.is_dev(texts[::-1]), dev[::-1])  # not the position
    assert (split.is_dev(texts[:5000]) == dev[:5000]).all()  # not the chunk
    assert (stream.HashSplit(0.1, seed=4).is_dev(texts) != dev).any()
    assert split.is_dev(["same text", "same text"]).tolist() in ([True, True], [False, False])


def test_scan_partitions_the_rows_and_counts_the_train_side(tmp_path):
    import pandas as pd

    texts = _texts(500)
    labels = ["a|b" if i % 3 else "c" for i in range(500)]
    for i in range(2):
        pd.DataFrame({"text": texts[i::2], "labels": labels[i::2]}).to_csv(tmp_path / f"s{i}.csv", index=False)
    train, dev = stream.scan(tmp_path / "s*.csv", dev_fraction=0.2, seed=1, chunksize=64, sample_docs=100)
    chunks = list(train.chunks())
    train_texts = [t for chunk in chunks for t in chunk.texts]
    assert sorted(train_texts + dev.texts) == sorted(texts) and not set(train_texts) & set(dev.texts)
    assert len(train) == len(train_texts) and 0.15 < len(dev) / 500 < 0.25
    in_memory = concat(chunks, "train")
    expected = DataSummary.of(in_memory)
    assert train.summary.label_counts == expected.label_counts and train.summary.longest == 2
    np.testing.assert_array_equal(train.summary.word_counts, expected.word_counts)
    # The sample is bounded, drawn from the train side in file order, and the same on every scan.
    assert len(train.sample) == 100 and set(train.sample.texts) <= set(train_texts)
    again, _ = stream.scan(tmp_path / "s*.csv", dev_fraction=0.2, seed=1, chunksize=7, sample_docs=100)
    assert again.sample.texts == train.sample.texts
    # Dev is capped: the fraction shrinks to about `max_dev_docs`.
    _, small = stream.scan(tmp_path / "s*.csv", dev_fraction=0.5, seed=1, max_dev_docs=50)
    assert 25 < len(small) < 75


def test_the_word_count_quantile_is_numpys():
    texts = [" ".join(["w"] * n) for n in np.random.default_rng(0).integers(1, 300, 999)]
    summary = DataSummary.of(LabelledData(texts, [["a"]] * len(texts), list(range(len(texts))), "texts"))
    words = [len(t.split()) for t in texts]
    for q in (0.5, 0.9, 0.99):
        assert summary.word_count_quantile(q) == np.quantile(words, q)


def test_streamed_documents_are_the_in_memory_ones_read_from_records(tiny_run, tiny_shards, tmp_path):
    from mlgen.nn import preprocessing

    predictor, _ = tiny_run
    vectorizer, vocab = predictor.model.text_vectorizer, predictor.vocab  # every tiny label is in it
    train, _ = stream.scan(tiny_shards, dev_fraction=0.2, seed=0, chunksize=50)
    in_memory = list(preprocessing.documents(vectorizer, concat(list(train.chunks()), "train"), vocab))
    documents = preprocessing.documents(vectorizer, train, vocab, tmp_path, seed=1)
    assert len(list(tmp_path.glob("chunk-*.tfrecord"))) == len(list(train.chunks())) > 1  # one file per chunk
    assert documents.cardinality() == len(train)

    def rows(elements):
        return [np.concatenate([ids, labels]).tolist() for ids, labels in elements]

    passes = [rows(documents), rows(documents)]
    width = train.summary.longest
    expected = rows((ids, np.pad(labels, (0, width - len(labels)))) for ids, labels in in_memory)
    assert all(sorted(p) == sorted(expected) for p in passes)
    assert passes[0] != passes[1]  # the chunks come in a new order every pass


def test_a_streamed_run_folder_reloads_with_identical_predictions(tiny_shards, tiny_csvs, tmp_path, monkeypatch):
    import tempfile

    from mlgen import registry
    from mlgen.config import ModelConfig, TrainConfig

    train, dev = stream.scan(tiny_shards, dev_fraction=0.2, seed=0, chunksize=64, sample_docs=200)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    predictor = registry.fit(
        "cnn-rnn", train, dev, ModelConfig(**TINY_MODEL), TrainConfig(**{**TINY_TRAIN, "epochs": 1}), verbose=0
    )
    assert not list((tmp_path / "tmp").glob("mlgen-*"))  # the training records are gone (autograph leaves its own)
    assert predictor.config["data"]["stream"] == {"chunk_rows": 64, "sample_docs": 200}
    assert predictor.config["data"]["train_docs"] == len(train)
    texts = read_labelled_csv(tiny_csvs["test"]).texts
    predictor.save(tmp_path / "run")
    assert mlgen.load(tmp_path / "run").predict(texts) == predictor.predict(texts)


def test_train_streams_above_the_size_and_names_a_bad_shard_row(tiny_shards, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stream, "STREAM_ABOVE_BYTES", 0)  # every file is "large"
    out = tmp_path / "run"
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--epochs") + 1] = "1"
    assert main(["train", "--train", tiny_shards, "--out", out, "--verbose", "0", *flags]) == 0
    assert "streamed in chunks" in capsys.readouterr().err
    assert "stream" in mlgen.load(out).config["data"]

    bad = tmp_path / "bad"
    bad.mkdir()
    write_csv(bad / "p1.csv", GOOD)
    write_csv(bad / "p2.csv", BAD)
    assert main(["train", "--train", str(bad / "p*.csv"), "--out", tmp_path / "r2", "--stream", *flags]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'p2.csv'}: empty labels in column 'labels' at data rows 2" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "linear-br", "--stream"], "--stream trains cnn-rnn and cnn-br"),
        (["--stream", "--dataset", "reuters21578"], "--stream reads --train files"),
    ],
)
def test_stream_refused_where_it_does_not_apply(argv, message, tiny_csvs, tmp_path, capsys):
    train = [] if "--dataset" in argv else ["--train", str(tiny_csvs["train"])]
    assert main(["train", *train, "--out", tmp_path / "run", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_glob_of_shards_also_trains_in_memory(tiny_shards, tmp_path, capsys):
    assert main(["train", "--model", "linear-br", "--train", tiny_shards, "--out", tmp_path / "run"]) == 0
    data = mlgen.load(tmp_path / "run").config["data"]
    assert data["train_docs"] + data["dev_docs"] == 380 and "stream" not in data
    assert f"{tiny_shards}: read 380 documents" in capsys.readouterr().err
