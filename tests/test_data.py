import numpy as np
import pandas as pd
import pytest

from emotion_classifier.data import DataError, load_prepared, prepare, read_raw, read_split, subset

from .conftest import GOOD, LABELS, write_raw


def test_reads_quoted_text_and_labels(raw_dir):
    splits, names = read_raw(raw_dir)
    assert names == LABELS
    train = splits["train"]
    assert train["text"][1] == 'she said "hi" to [NAME]'
    assert train["label_ids"][1] == [0, 2]
    assert list(train["line"]) == [1, 2, 3, 4]


def _bad(tmp_path, split, lines):
    rows = dict(GOOD)
    rows[split] = lines
    return write_raw(tmp_path / "raw", rows)


@pytest.mark.parametrize(
    "split, lines, message",
    [
        ("train", ["a\t0\tx1", "b\t0\tx2\textra"],
         "train.tsv:2: expected 3 tab-separated columns (text, label ids, comment id), found 4"),
        ("train", ["a\t0\tx1", "b\t0"], "train.tsv:2: expected 3 tab-separated columns"),
        ("dev", ["a\t0\ty1", " \t1\ty2"], "dev.tsv:2: empty text"),
        ("train", ["a\t0\tx1", "b\t0\tx2", "c\t3\tx3"], "train.tsv:3: label id 3 is outside 0..2"),
        ("train", ["a\t0\tx1", "b\t-1\tx2"], "train.tsv:2: label id -1 is outside 0..2"),
        ("test", ["a\tjoy\tz1"], "test.tsv:1: label id 'joy' is not an integer"),
        ("test", ["a\t1.5\tz1"], "test.tsv:1: label id '1.5' is not an integer"),
        ("train", ["a\t0\tx1", "b\t1\tx2", "c\t1\tx1"], "train.tsv:3: comment id 'x1' duplicates line 1"),
        ("dev", ["a\t0\ta3"], "dev.tsv:1: comment id 'a3' is also in train.tsv line 3"),
        ("test", [], "test.tsv:1: file is empty"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, split, lines, message):
    raw = _bad(tmp_path, split, lines)
    if not lines:
        (raw / f"{split}.tsv").write_text("")
    with pytest.raises(DataError) as e:
        read_raw(raw)
    assert str(e.value) == f"{raw}/{message}" or str(e.value).startswith(f"{raw}/{message}")


def test_a_stray_quote_that_merges_lines_is_an_error(tmp_path):
    """Before: prepare exited 0 and 79 dev rows became one 6,401-character text."""
    lines = ["fine\t0\tx1", '"unclosed quote\t0\tx2', "next\t1\tx3", "more\t2\tx4", 'a "b" c\t1\tx5']
    raw = _bad(tmp_path, "train", lines)
    with pytest.raises(DataError, match=r"train.tsv:2: a text runs over 4 lines \(5 lines in the file, 2 rows read\)"
                                        r": a double quote at its start opens a quoted field"):
        read_raw(raw)
    raw = _bad(tmp_path / "b", "train", ['"two\nlines"\t0\tx1', "ok\t1\tx2"])  # valid CSV, but not GoEmotions
    with pytest.raises(DataError, match=r"train.tsv:1: a text runs over 2 lines"):
        read_raw(raw)


def test_byte_order_marks_are_dropped(raw_dir):
    """Before: label 0 became '\ufeffjoy' in labels.json and everywhere after."""
    for name in ("emotions.txt", "train.tsv"):
        path = raw_dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    splits, names = read_raw(raw_dir)
    assert names == LABELS and splits["train"]["text"][0] == "hello there"


@pytest.mark.parametrize("name, line", [("emotions.txt", 2), ("dev.tsv", 2)])
def test_invalid_utf8_names_the_line(raw_dir, name, line):
    path = raw_dir / name
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"caf\xe9" + lines[1]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=rf"{name}:{line}: invalid UTF-8 \(invalid continuation byte at byte \d+\); "
                                        "save the file as UTF-8"):
        read_raw(raw_dir)


def test_missing_file(raw_dir):
    (raw_dir / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"dev.tsv:0: file not found"):
        read_raw(raw_dir)


def test_bad_label_names(raw_dir):
    (raw_dir / "emotions.txt").write_text("joy\nanger\njoy\n")
    with pytest.raises(DataError, match=r"emotions.txt:3: label name 'joy' duplicates line 1"):
        read_raw(raw_dir)


def test_prepare_writes_and_keeps_previous_output_on_failure(tmp_path, raw_dir):
    out = tmp_path / "prepared"
    counts = prepare(raw_dir, out)
    assert counts == {"train": 4, "dev": 2, "test": 2}
    splits, names = load_prepared(out)
    assert names == LABELS
    assert splits["train"]["labels"][1].tolist() == [1, 0, 1]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    (raw_dir / "train.tsv").write_text("fine\t0\tq1\n\t1\tq2\nbad\t28\tq3\n")
    with pytest.raises(DataError, match="train.tsv:2: empty text"):
        prepare(raw_dir, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left


def test_subset_is_seeded_and_ordered():
    df = pd.DataFrame({"x": range(100)})
    a, b = subset(df, 10, seed=3), subset(df, 10, seed=3)
    assert a["x"].tolist() == b["x"].tolist() and len(a) == 10
    assert np.all(np.diff(a["x"].to_numpy()) > 0)
    assert subset(df, 10, seed=4)["x"].tolist() != a["x"].tolist()
    assert len(subset(df, 0, seed=3)) == 100


def test_real_data_reads(shared_goemotions):
    df = read_split(shared_goemotions / "dev.tsv", 28)
    assert len(df) == 5426
    assert df["text"].str.contains('"').any()  # CSV-quoted fields were unquoted
