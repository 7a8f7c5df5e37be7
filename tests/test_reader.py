"""The labelled-CSV reader: formats, every bad-input case, drops, chunks, the dev split."""

import gzip

import pytest
from conftest import write_csv

from mlgen.data.reader import (
    CSVFormat,
    check_texts,
    count_rows,
    from_lists,
    is_utf8,
    read_chunks,
    read_labelled_csv,
    read_texts,
    shard_rows,
    split_labels,
    train_dev_split,
)
from mlgen.errors import InputError

GOOD = "text,labels\nfirst doc,b|a\nsecond doc,a\nthird doc, c | a |c\n"


@pytest.mark.parametrize("name, sep", [("d.csv", ","), ("d.tsv", "\t"), ("d.csv.gz", ","), ("d.tsv.gz", "\t")])
def test_reads_every_format_in_file_order(tmp_path, name, sep):
    path = write_csv(tmp_path / name, GOOD.replace(",", sep))
    data = read_labelled_csv(path)
    assert data.texts == ["first doc", "second doc", "third doc"]
    # Labels keep file order, whitespace is stripped, duplicates collapse.
    assert data.label_sets == [["b", "a"], ["a"], ["c", "a"]]
    assert data.rows == [1, 2, 3]
    assert data.dropped == {}


def test_other_columns_and_separator(tmp_path):
    path = write_csv(tmp_path / "d.csv", "id,body,tags\n1,hello,x;y\n2,world,NA\n")
    data = read_labelled_csv(path, CSVFormat(text_column="body", labels_column="tags", label_sep=";"))
    assert data.texts == ["hello", "world"]
    assert data.label_sets == [["x", "y"], ["NA"]]  # "NA" is a label, not a missing value


def test_one_hot_label_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,sport,politics,tech\na,1,0,1\nb,0,1,0\n")
    data = read_labelled_csv(path, CSVFormat(label_columns=("sport", "politics", "tech")))
    assert data.label_sets == [["sport", "tech"], ["politics"]]


def test_split_labels():
    assert split_labels(" b | a|b||") == ["b", "a"]
    assert split_labels("") == []


def _error(path, fmt=CSVFormat()):
    with pytest.raises(InputError) as info:
        read_labelled_csv(path, fmt)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "nope.csv")


def test_missing_labels_column_lists_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,tags\na,b\n")
    message = _error(path)
    assert str(path) in message and "'labels'" in message
    assert "columns found: text, tags" in message and "labels_column" in message


def test_missing_text_column(tmp_path):
    message = _error(write_csv(tmp_path / "d.csv", "body,labels\na,b\n"))
    assert "'text'" in message and "columns found: body, labels" in message and "text_column" in message


def test_missing_one_hot_column(tmp_path):
    message = _error(write_csv(tmp_path / "d.csv", "text,a\nx,1\n"), CSVFormat(label_columns=("a", "b")))
    assert "'b'" in message and "columns found: text, a" in message


def test_empty_file(tmp_path):
    assert "the file is empty" in _error(write_csv(tmp_path / "d.csv", ""))


def test_header_only(tmp_path):
    assert "no data rows" in _error(write_csv(tmp_path / "d.csv", "text,labels\n"))


def test_empty_text_names_the_rows(tmp_path):
    message = _error(write_csv(tmp_path / "d.csv", 'text,labels\na,x\n"  ",x\nb,x\n,y\n'))
    assert "empty text" in message and "data rows 2, 4" in message and "drop_invalid=True" in message


def test_empty_labels_are_an_error_unless_allowed(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,labels\na,x\nb,\nc, | \n")
    message = _error(path)
    assert "empty labels" in message and "data rows 2, 3" in message and "allow_empty_labels=True" in message
    data = read_labelled_csv(path, CSVFormat(allow_empty_labels=True))
    assert data.label_sets == [["x"], [], []]


def test_one_hot_cells_must_be_0_or_1(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,a,b\nx,1,0\ny,0,yes\nz,2,1\n")
    message = _error(path, CSVFormat(label_columns=("a", "b")))
    assert "column 'b'" in message and "'yes'" in message and "data row 2" in message
    assert "invalid data rows: 2, 3" in message


def test_blank_lines_are_dropped_counted_and_keep_line_numbers(tmp_path):
    path = write_csv(tmp_path / "d.csv", 'text,labels\na,x\n\nb,y\n"two\nlines",z\n,\n\n')
    data = read_labelled_csv(path)
    assert data.texts == ["a", "b", "two\nlines"]
    assert data.rows == [1, 3, 4]
    assert data.dropped == {"empty row": [2, 5, 6]}  # ",": every field empty, as on a blank line
    assert "dropped 3 invalid rows: 3 empty row (data rows 2, 5, 6)" in data.summary()
    message = _error(write_csv(tmp_path / "e.csv", "text,labels\na,x\n\n ,y\n"))
    assert "empty text in column 'text' at data rows 3" in message  # the blank line is row 2
    one_hot = write_csv(tmp_path / "h.csv", "text,a,b\nx,1,0\n\ny,0,1\n")
    assert read_labelled_csv(one_hot, CSVFormat(label_columns=("a", "b"))).label_sets == [["a"], ["b"]]


def test_one_hot_row_without_labels_names_the_one_hot_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,a,b\nx,1,0\ny,0,0\n")
    message = _error(path, CSVFormat(label_columns=("a", "b")))
    assert "empty labels in one-hot columns 'a', 'b' at data rows 2" in message and "'labels'" not in message


def test_undecodable_bytes_name_the_encoding_and_line(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,labels\ncaf\u00e9 au lait,x\n", encoding="latin-1")
    message = _error(path)
    assert "utf-8" in message and "line 2" in message and "encoding='latin-1'" in message
    assert read_labelled_csv(path, CSVFormat(encoding="latin-1")).texts == ["caf\u00e9 au lait"]


def test_unknown_encoding_name(tmp_path):
    assert "not an encoding" in _error(write_csv(tmp_path / "d.csv", GOOD), CSVFormat(encoding="klingon"))


def test_malformed_csv(tmp_path):
    message = _error(write_csv(tmp_path / "d.csv", "text,labels\na,b\nc,d,e,f\n"))
    assert "not a readable CSV" in message


def test_drop_invalid_counts_every_drop(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,labels\na,x\n,x\nb,\n,\nc,y\n")
    data = read_labelled_csv(path, CSVFormat(drop_invalid=True))
    assert data.texts == ["a", "c"] and data.rows == [1, 5]
    # A row is counted once, under its first problem.
    assert data.dropped == {"empty row": [4], "empty text": [2], "empty labels": [3]}
    assert data.num_dropped == 3
    assert "dropped 3 invalid rows: 1 empty row (data rows 4); 1 empty text (data rows 2)" in data.summary()


def test_chunks_match_a_whole_read(tmp_path):
    rows = "".join(f"doc {i},l{i % 3}\n" for i in range(25))
    path = write_csv(tmp_path / "d.csv", "text,labels\n" + rows)
    whole = read_labelled_csv(path)
    chunks = list(read_chunks(path, chunksize=10))
    assert [len(frame) for frame, _ in chunks] == [10, 10, 5]
    assert [t for _, c in chunks for t in c.texts] == whole.texts
    assert [r for _, c in chunks for r in c.rows] == list(range(1, 26))


def test_read_texts_ignores_labels(tmp_path):
    data = read_texts(write_csv(tmp_path / "d.csv", "text\nhello\nworld\n"))
    assert data.texts == ["hello", "world"] and data.label_sets == [[], []]


def test_bad_format_options():
    with pytest.raises(InputError, match="label_sep is empty"):
        CSVFormat(label_sep="")
    with pytest.raises(InputError, match="label_columns is empty"):
        CSVFormat(label_columns=())


def test_train_dev_split_is_seeded_disjoint_and_complete(tmp_path):
    rows = "".join(f"doc {i},x\n" for i in range(50))
    data = read_labelled_csv(write_csv(tmp_path / "d.csv", "text,labels\n" + rows))
    train, dev = train_dev_split(data, 0.2, seed=3)
    assert len(dev) == 10 and len(train) == 40
    assert sorted(train.rows + dev.rows) == list(range(1, 51))
    assert train.rows == sorted(train.rows)  # file order kept
    assert train_dev_split(data, 0.2, seed=3)[1].rows == dev.rows
    assert train_dev_split(data, 0.2, seed=4)[1].rows != dev.rows
    with pytest.raises(InputError, match=r"dev_fraction=1.5: must be between 0 and 1"):
        train_dev_split(data, 1.5)
    with pytest.raises(InputError, match="empty dev"):
        train_dev_split(data, 0.001)


def _damaged(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    message = _error(path)
    assert str(path) in message and "damaged" in message and "re-create" in message
    return message


def test_a_gzip_with_a_flipped_byte(tmp_path):
    data = bytearray(gzip.compress(("text,labels\n" + "a doc,x\n" * 200).encode()))
    data[len(data) // 2] ^= 0xFF
    assert "the gzip data is damaged" in _damaged(tmp_path, "d.csv.gz", bytes(data))


def test_a_truncated_gzip(tmp_path):
    data = gzip.compress(("text,labels\n" + "a doc,x\n" * 200).encode())
    _damaged(tmp_path, "d.csv.gz", data[: len(data) // 2])


@pytest.mark.parametrize("name", ["d.csv.zip", "d.csv.xz", "d.csv.bz2", "d.csv.gz"])
def test_a_file_that_is_not_what_its_suffix_says(tmp_path, name):
    _damaged(tmp_path, name, b"this is not compressed at all\n" * 10)


def test_an_undecodable_compressed_file_names_the_line(tmp_path):
    path = write_csv(tmp_path / "d.csv.gz", "text,labels\na,x\ncaf\u00e9,y\n", encoding="latin-1")
    assert "line 3 (byte 0xe9) is not valid utf-8" in _error(path)


def test_a_file_whose_every_row_is_dropped_is_an_error(tmp_path):
    path = write_csv(tmp_path / "d.csv", "text,labels\n,x\n\n ,y\n")
    message = _error(path, CSVFormat(drop_invalid=True))
    assert "read 0 documents, dropped 3 invalid rows" in message and "no documents are left" in message


def test_is_utf8(tmp_path):
    assert is_utf8(write_csv(tmp_path / "a.csv", "text\nplain\n")) is None
    assert is_utf8(write_csv(tmp_path / "u.csv.gz", "text\ncaf\u00e9\n")) is True
    assert is_utf8(write_csv(tmp_path / "l.csv", "text\ncaf\u00e9\n", encoding="latin-1")) is False


def test_lists_follow_the_csv_readers_rules():
    data = from_lists(["a doc", "b doc"], [[" earn ", "earn", ""], ("acq",)], "fit data")
    assert data.label_sets == [["earn"], ["acq"]]  # stripped as the CSV reader strips "earn | earn"
    assert data.label_sets == read_labelled_csv_like(" earn | earn|", "acq")
    with pytest.raises(InputError, match=r"fit data: empty text at items 1"):
        from_lists(["a", "  "], [["x"], ["y"]], "fit data")
    with pytest.raises(InputError, match=r"fit data: empty labels at items 0; pass allow_empty_labels=True"):
        from_lists(["a"], [[" "]], "fit data")
    assert from_lists(["a"], [[]], "fit data", allow_empty_labels=True).label_sets == [[]]
    with pytest.raises(InputError, match=r"label set 1 is None; give a list of label names"):
        from_lists(["a", "b"], [["x"], None], "fit data")
    with pytest.raises(InputError, match="fit data: no documents"):
        from_lists([], [], "fit data")


def read_labelled_csv_like(*cells):
    return [split_labels(cell) for cell in cells]


def test_texts_that_are_not_valid_unicode_are_refused():
    with pytest.raises(InputError, match=r"texts: item 1 is not valid Unicode text \(surrogates not allowed"):
        check_texts(["fine", "\ud800"])


def test_shards_of_rows_are_contiguous_disjoint_and_cover_every_row():
    for num_rows in (0, 1, 2, 7, 100):
        for num_shards in (1, 2, 3, 8):
            parts = [shard_rows(num_rows, k, num_shards) for k in range(1, num_shards + 1)]
            covered = [row for first, last in parts for row in range(first, last + 1)]
            assert covered == list(range(1, num_rows + 1)), (num_rows, num_shards)


def test_a_range_of_rows_is_read_as_the_whole_read_would_number_and_check_it(tmp_path):
    # Rows 1-8: row 3 is blank, row 6 has no text (invalid), row 8 has no labels (invalid).
    path = write_csv(tmp_path / "d.csv", "text,labels\na,x\nb,y\n\nc,x|y\nd,x\n,y\ne,x\nf,\n")
    assert count_rows(path) == 8
    fmt = CSVFormat(drop_invalid=True)
    whole = read_labelled_csv(path, fmt)
    for first, last in ((1, 8), (2, 4), (4, 5), (3, 3), (6, 8), (5, 4)):
        for chunksize in (None, 1, 3):
            chunks = list(read_chunks(path, fmt, chunksize=chunksize, rows=(first, last)))
            rows = [row for _, data in chunks for row in data.rows]
            assert rows == [row for row in whole.rows if first <= row <= last], (first, last, chunksize)
            texts = [text for frame, _ in chunks for text in frame["text"]]
            assert texts == [t for t, row in zip(whole.texts, whole.rows) if first <= row <= last]
            dropped = sorted(row for _, data in chunks for reasons in data.dropped.values() for row in reasons)
            assert dropped == [row for row in (3, 6, 8) if first <= row <= last]
    # Without --drop-invalid only the rows asked for are checked, and an error names its row.
    assert [d.rows for _, d in read_chunks(path, rows=(1, 5))] == [[1, 2, 4, 5]]
    with pytest.raises(InputError, match="data rows 6"):
        list(read_chunks(path, rows=(5, 7)))


def test_a_folder_is_not_a_missing_file(tmp_path):
    (tmp_path / "shards").mkdir()
    message = _error(tmp_path / "shards")
    assert message == f"{tmp_path / 'shards'}: is a folder, not a file; name one of the files in it"
    with pytest.raises(InputError, match="is a folder, not a file"):
        count_rows(tmp_path / "shards")


def test_data_of_several_files_names_the_file_of_each_row_and_drop(tmp_path):
    from mlgen.data.reader import concat

    fmt = CSVFormat(drop_invalid=True)
    a = read_labelled_csv(write_csv(tmp_path / "a.csv", "text,labels\none,x\n,x\n"), fmt)
    b = read_labelled_csv(write_csv(tmp_path / "b.csv", "text,labels\ntwo,y\nthree,\n"), fmt)
    both = concat([a, b], "shards/*.csv")
    assert both.files == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")] and both.rows == [1, 1]
    assert both.locate([1]) == f"{tmp_path / 'b.csv'} data rows 1"
    assert both.dropped == {f"empty text in {tmp_path / 'a.csv'}": [2], f"empty labels in {tmp_path / 'b.csv'}": [2]}
    assert f"1 empty labels in {tmp_path / 'b.csv'} (data rows 2)" in both.summary()
    train, dev = train_dev_split(concat([both, both], "again"), 0.5, seed=0)  # a split keeps each row's file
    assert sorted(train.files + dev.files) == sorted(both.files * 2)
    assert a.files is None and concat([a, a], "a").files is None and a.locate([0]) == "data rows 1"


def test_label_names_that_are_not_valid_unicode_are_refused():
    with pytest.raises(InputError, match=r"fit data: label set 1 holds '\\udc80', which is not valid Unicode text"):
        from_lists(["a", "b"], [["x"], ["\udc80"]], "fit data")
