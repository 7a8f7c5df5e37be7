"""One-line errors in the words of the door the user came through: CLI flags for the CLI."""

import gzip

from mlgen.cli import main


def test_train_on_a_folder_says_it_is_one_and_gives_the_glob_to_pass(tiny_csvs, tmp_path, capsys):
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("a.csv.gz", "b.csv.gz"):
        (folder / name).write_bytes(gzip.compress(tiny_csvs["train"].read_bytes()))
    assert main(["train", "--model", "linear-br", "--train", folder, "--out", tmp_path / "run"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mlgen: error: --train {folder}: is a folder, not a file (it holds 2 .csv.gz files); pass its files as a "
        f"quoted glob, e.g. --train '{folder}/*.csv.gz'"
    )
    assert not (tmp_path / "run").exists()


def test_predict_chunk_size_is_bounded(linear_run, tiny_csvs, tmp_path, capsys):
    _, run = linear_run
    out = tmp_path / "o.csv"
    for size in ("1000000000000", "0"):
        argv = ["predict", "--model", run, "--input", tiny_csvs["test"], "--output", out, "--chunk-size", size]
        assert main(argv) == 2
        assert capsys.readouterr().err.strip() == (
            f"mlgen: error: --chunk-size must be between 1 and 1,000,000 rows (a chunk is held in memory at once), "
            f"got {size}"
        )
    assert not out.exists()


def test_evaluate_over_shards_names_the_file_of_a_label_the_model_lacks(linear_run, tmp_path, capsys):
    _, run = linear_run
    (tmp_path / "shards").mkdir()
    for name, rows in (("a.csv", "wheat exports rose,grain\n"), ("b.csv", "corn prices,grain\ncocoa fell,cocoa-new\n")):
        (tmp_path / "shards" / name).write_text("text,labels\n" + rows)
    pattern = str(tmp_path / "shards" / "*.csv")
    assert main(["evaluate", "--model", run, "--data", pattern, "--json", "--verbose", "0"]) == 0
    err = capsys.readouterr().err
    assert f"{pattern}: read 3 documents" in err
    assert f"count as misses: 'cocoa-new' ({tmp_path / 'shards' / 'b.csv'} data rows 2)" in err
    assert main(["evaluate", "--model", run, "--data", tmp_path / "shards"]) == 2
    assert "--data" in capsys.readouterr().err
