"""The label vocabulary: ids, orders, encoding, multi-hot, JSON, the Keras lookup."""

import numpy as np
import pytest

from mlgen.data.vocab import BOS_ID, EOS_ID, PAD_ID, LabelVocabulary
from mlgen.errors import InputError

SETS = [["b", "a"], ["a", "c"], ["a"], ["c", "b", "d"], ["d"]]  # a:3, b:2, c:2, d:2


def test_ids_are_specials_then_most_frequent_first_ties_by_name():
    vocab = LabelVocabulary.build(SETS)
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert vocab.labels == ["a", "b", "c", "d"]
    assert vocab.counts == [3, 2, 2, 2]
    assert vocab.tokens[:3] == ["<pad>", "<bos>", "<eos>"]
    assert vocab.size == 7 and len(vocab) == 4
    assert [vocab.id(label) for label in "abcd"] == [3, 4, 5, 6]


@pytest.mark.parametrize(
    "order, expected",
    [
        ("frequency", ["a", "b", "c", "d"]),
        ("rare-first", ["b", "c", "d", "a"]),
        ("alphabetical", ["a", "b", "c", "d"]),
        ("given", ["d", "b", "a", "c"]),
    ],
)
def test_label_orders(order, expected):
    vocab = LabelVocabulary.build(SETS, order=order)
    assert vocab.sort(["d", "b", "a", "c", "b"]) == expected


def test_encode_decode_round_trip():
    vocab = LabelVocabulary.build(SETS)
    ids = vocab.encode(["c", "a"])
    assert ids == [BOS_ID, 3, 5, EOS_ID]
    assert vocab.to_labels(ids) == ["a", "c"]
    # Decoding stops at EOS and skips PAD, BOS and repeats.
    assert vocab.to_labels([BOS_ID, 4, PAD_ID, 4, 6, EOS_ID, 3]) == ["b", "d"]


def test_label_ids_are_in_generation_order_then_padding():
    vocab = LabelVocabulary.build(SETS)
    ids = vocab.label_ids([["b", "a"], ["d"]])
    assert ids.tolist() == [[3, 4], [6, PAD_ID]] and ids.dtype == np.int32
    assert vocab.label_ids([["a"]], width=5).tolist() == [[3, 0, 0, 0, 0]]
    with pytest.raises(InputError, match="too narrow"):
        vocab.label_ids([["a", "b"]], width=1)


def test_unknown_labels_are_an_error_when_encoding_and_counted_on_request():
    vocab = LabelVocabulary.build(SETS)
    with pytest.raises(InputError, match=r"label 'zz' \(data rows 8\)"):
        vocab.label_ids([["a"], ["zz", "a"]], rows=[7, 8])
    assert vocab.unknown_rows([["a", "zz"], ["yy"], ["zz"]]) == {"zz": [1, 3], "yy": [2]}
    assert vocab.drop_unknown([["a", "zz"]]) == [["a"]]
    from mlgen.data import LabelledData

    data = LabelledData(["t1", "t2"], [["a", "zz"], ["zz", "yy"]], rows=[4, 9], source="dev.csv")
    assert vocab.unknown_report(data) == (
        "dev.csv: 3 gold labels (2 distinct) are not in the model's labels and count as misses: "
        "'zz' (data rows 4, 9); 'yy' (data rows 9)"
    )
    assert vocab.unknown_report(LabelledData(["t"], [["a"]], rows=[1], source="x")) is None
    # Data of several files (a glob of shards): each unknown label's rows come with their file.
    shards = LabelledData(
        ["t1", "t2", "t3"],
        [["a"], ["zz"], ["a", "zz"]],
        rows=[4, 4, 7],
        source="s/*.csv",
        files=["s/1.csv", "s/2.csv", "s/2.csv"],
    )
    assert vocab.unknown_report(shards).endswith("count as misses: 'zz' (s/2.csv data rows 4, 7)")
    with pytest.raises(InputError, match="not in the label vocabulary"):
        vocab.id("zz")


def test_multi_hot_round_trip():
    vocab = LabelVocabulary.build(SETS)
    matrix = vocab.to_multi_hot([["c", "a"], [], ["d"]])
    assert matrix.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert vocab.from_multi_hot(matrix) == [["a", "c"], [], ["d"]]
    with pytest.raises(InputError, match="width 4"):
        vocab.from_multi_hot(np.zeros((1, 3)))
    with pytest.raises(InputError):
        vocab.to_multi_hot([["zz"]])


def test_json_round_trip(tmp_path):
    vocab = LabelVocabulary.build(SETS, order="rare-first")
    vocab.save(tmp_path / "v.json")
    loaded = LabelVocabulary.load(tmp_path / "v.json")
    assert loaded == vocab
    assert loaded.sort(["a", "b"]) == vocab.sort(["a", "b"])


def test_bad_vocabularies():
    with pytest.raises(InputError, match="empty"):
        LabelVocabulary.build([[], []])
    with pytest.raises(InputError, match="reserved"):
        LabelVocabulary(["a", "<eos>"])
    with pytest.raises(InputError, match="duplicate"):
        LabelVocabulary(["a", "a"])
    with pytest.raises(InputError, match="label order"):
        LabelVocabulary(["a"], order="random")
