"""Issue 30's probes: a damaged model directory or odd input gets one clear line, the input is never overwritten,
a huge line is cut before the tokenizer, blank texts follow one rule."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from emotion_classifier.data import DataError, read_label_names, read_split
from emotion_classifier.encoder import bounded
from emotion_classifier.predict import main as predict_main


@pytest.fixture
def model_dir(tuned_model):
    return tuned_model  # conftest's: trained once for the session; copied before it is damaged


def predict(args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of emotion-predict `args`."""
    try:
        predict_main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip()


def _json_edit(path, change):
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


DAMAGE = {  # what is done to a copy of the model directory -> what the one line says
    "thresholds cut to 27 labels' worth": (
        lambda d: _json_edit(d / "thresholds.json", lambda t: t["strategies"].update(
            {k: v[:-1] for k, v in t["strategies"].items()})), "holds 2 thresholds; the model has 3 labels"),
    "thresholds.json truncated": (lambda d: (d / "thresholds.json").write_text('{"weights_sha256": "ab'),
                                  "thresholds.json:1:"),
    "strategies deleted": (lambda d: _json_edit(d / "thresholds.json", lambda t: t.pop("strategies")),
                           "no `strategies` mapping"),
    "labels cut": (lambda d: _json_edit(d / "config.json", lambda c: c["labels"].pop()),
                   "labels must be 3 (n_labels) distinct names; it has 2"),
    "arch key deleted": (lambda d: _json_edit(d / "config.json", lambda c: c["arch"].pop("dropout")),
                         "arch lacks 'dropout'"),
    "arch value a string": (lambda d: _json_edit(d / "config.json", lambda c: c["arch"].update(dropout="x")),
                            "'arch.dropout' is 'x' (str)"),
    "max_length negative": (lambda d: _json_edit(d / "config.json", lambda c: c.update(max_length=-5)),
                            "max_length is -5; expected an integer in [1, 4096]"),
    "vocab_size huge": (lambda d: _json_edit(d / "config.json", lambda c: c.update(vocab_size=10**12)),
                        "vocab_size is 1000000000000"),
    "encoder layers huge": (lambda d: _json_edit(d / "config.json", lambda c: c["encoder_config"].update(
        num_hidden_layers=10**9)), "encoder_config.num_hidden_layers is 1000000000"),
    "tokenizer.json missing": (lambda d: (d / "tokenizer/tokenizer.json").unlink(),
                               "tokenizer.json: missing"),
    "duplicate labels": (lambda d: _json_edit(d / "config.json", lambda c: c["labels"].__setitem__(1, "joy")),
                         "distinct names"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_model_directory_gets_one_line(model_dir, tmp_path, capsys, case):
    damaged = tmp_path / "m"
    shutil.copytree(model_dir, damaged)
    damage, says = DAMAGE[case]
    damage(damaged)
    code, err = predict(["--model-dir", str(damaged), "--text", "I love this so much, [NAME]!"], capsys)
    assert code == 1 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert says in err, err


def test_output_equal_to_input_is_refused_and_the_input_kept(model_dir, tmp_path, capsys):
    for name, content in (("same.jsonl", '{"text": "so happy"}\n{"text": "angry"}\n'), ("same.txt", "a\nb\n")):
        src = tmp_path / name
        src.write_text(content)
        code, err = predict(["--model-dir", str(model_dir), "--input", str(src), "--output", str(src)], capsys)
        assert code == 1 and "is the --input file" in err and src.read_text() == content


def test_a_stray_quote_in_csv_input_names_its_line(model_dir, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text('text,other\n"unterminated,1\nsecond,2\n')
    code, err = predict(["--model-dir", str(model_dir), "--input", str(src), "--output", str(tmp_path / "o.csv")],
                        capsys)
    assert code == 1 and f"{src}:2: the record starting here is not valid CSV" in err, err
    assert not any(p.name.startswith(".o.csv") for p in tmp_path.iterdir())


@pytest.mark.parametrize("size", ["0", "-5", "x"])
def test_batch_size_must_be_positive(model_dir, capsys, size):
    code, err = predict(["--model-dir", str(model_dir), "--text", "hi", "--batch-size", size], capsys)
    assert code == 2 and "--batch-size" in err and "is not a whole number >= 1" in err


def test_blank_texts_keep_their_row_in_every_format(model_dir, tmp_path, capsys):
    """Issue 49 (10): output row i is input row i; a blank text is kept, unscored, in .txt, .jsonl and .csv alike
    (a .jsonl {"text": ""} was scored while a blank line was dropped)."""
    files = {"in.txt": "happy\n\n   \nangry\n", "in.jsonl": '{"text": "happy"}\n\n{"text": ""}\n{"text": "angry"}\n',
             "in.csv": 'text\nhappy\n""\n   \nangry\n'}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        for out_name in (f"{name}.out.jsonl", f"{name}.out.csv"):
            predict_main(["--model-dir", str(model_dir), "--input", str(tmp_path / name), "--output",
                          str(tmp_path / out_name), "--all-scores"])
        recs = [json.loads(x) for x in (tmp_path / f"{name}.out.jsonl").read_text().splitlines()]
        assert [r["text"].strip() for r in recs] == ["happy", "", "", "angry"], (name, recs)
        assert [r["labels"] == [] and r["scores"] is None for r in recs] == [False, True, True, False]
        rows = list(csv.reader((tmp_path / f"{name}.out.csv").open()))[1:]
        assert [r[0].strip() for r in rows] == ["happy", "", "", "angry"] and rows[1][1:] == ["", "", "", ""]
        assert "4 rows (2 blank, kept unscored)" in capsys.readouterr().err


@pytest.mark.parametrize("name, content", [
    ("in.tsv", "id\ttext\n1\tso happy\n2\tmad, angry\n"),
    ("in.ndjson", '{"text": "so happy"}\n{"text": "mad, angry"}\n'),
    ("in.json", '["so happy", {"text": "mad, angry"}]'),
    ("in.TXT", "so happy\nmad, angry\n"),
])
def test_every_format_a_user_hands_it_is_read_as_what_it_is(model_dir, tmp_path, capsys, name, content):
    """Issue 49 (9): .tsv, .ndjson and .json were read as plain text, one line a text."""
    (tmp_path / name).write_text(content)
    code, err = predict(["--model-dir", str(model_dir), "--input", str(tmp_path / name), "--output",
                         str(tmp_path / "o.jsonl")], capsys)
    assert code == 0, err
    assert [json.loads(x)["text"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == ["so happy",
                                                                                               "mad, angry"]


@pytest.mark.parametrize("name, content, says", [
    ("in.xml", "<t>so happy</t>\n", "in.xml: cannot tell the format from the suffix '.xml'"),
    ("in", "so happy\n", "in: cannot tell the format from the suffix '(none)'"),
    ("in.json", '{"text": "hi"}', "in.json: expected a JSON array of texts"),
    ("in.json", '["ok", 3]', "in.json: item 1: expected an object with a \"text\" field"),
    ("in.json", '["ok",\n oops]', "in.json:2: not valid JSON"),
    ("in.tsv", "so happy\t1\n", "in.tsv:1: no `text` column in the header"),
    ("in.txt", "so happy\rso sad\rfine\r", "in.txt:1: a carriage return inside the line"),
    ("in.csv", 'id,"te"xt\n1,hi\n', "in.csv:1: the record starting here is not valid CSV"),
])
def test_inputs_it_cannot_read_get_one_line_naming_file_and_line(model_dir, tmp_path, capsys, name, content, says):
    """Issue 49 (9, 11): an unknown suffix, a CR-only file (was one text), a CSV header that is not CSV (was an
    UnboundLocalError)."""
    (tmp_path / name).write_text(content, newline="")
    code, err = predict(["--model-dir", str(model_dir), "--input", str(tmp_path / name)], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err


def test_output_to_a_fifo_or_a_device_is_written_in_place(model_dir, tmp_path, capsys):
    """Issue 49 (12): --output /dev/null (as root) or a FIFO was replaced by a regular file."""
    import stat
    import threading

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    code, err = predict(["--model-dir", str(model_dir), "--text", "so happy", "--output", str(fifo)], capsys)
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(got[0])["text"] == "so happy"
    assert predict(["--model-dir", str(model_dir), "--text", "so happy", "--output", "/dev/null"], capsys)[0] == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_huge_line_is_cut_to_what_its_tokens_come_from(tiny_encoder):
    from emotion_classifier.encoder import load_tokenizer

    tok = load_tokenizer(str(tiny_encoder))
    texts = ["happy " * 3000, "a" * 250 + "   \n\t " * 2000 + " glad" * 5000, "x" * 2_000_000, "so glad"]
    for text in texts:
        cut = bounded(text, 16)
        assert len(cut) <= 16 * 100 + 1 or cut == text
        full = tok(text, truncation=True, max_length=16)["input_ids"]
        assert tok(cut, truncation=True, max_length=16)["input_ids"] == full
    assert bounded("so glad", 16) == "so glad"


def test_predict_memory_stays_bounded_on_one_huge_line(model_dir, tmp_path):
    """A 20 MB single line (the tokenizer took 1 GB on 5 MB before the cut): peak RSS in a subprocess."""
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("needs GNU time (apt-get install time)")
    src = tmp_path / "huge.txt"
    src.write_text("happy " * 3_500_000 + "\n")
    r = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "emotion_classifier.predict",
                        "--model-dir", str(model_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")],
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1  # the line was scored
    peak_mb = int(r.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb < 1024, peak_mb


def test_sigterm_leaves_no_temp_file(model_dir, tmp_path):
    src = tmp_path / "many.txt"
    src.write_text("so happy today\n" * 400_000)
    out = tmp_path / "o.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "emotion_classifier.predict", "--model-dir", str(model_dir),
                             "--input", str(src), "--output", str(out)], stderr=subprocess.PIPE, text=True)
    def writing():  # its temp output (.o.jsonl.XXXX.jsonl), with records in it: scoring has begun
        return [p for p in tmp_path.iterdir() if p.name.startswith(".o.jsonl.") and p.suffix == ".jsonl"
                and p.stat().st_size > 0]

    for _ in range(1200):
        if writing() or proc.poll() is not None:
            break
        __import__("time").sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()  # still scoring, its temp output open
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not any(p.name.startswith(".o.jsonl") for p in tmp_path.iterdir()) and not out.exists()


def test_label_names_that_differ_by_whitespace_are_duplicates(tmp_path):
    f = tmp_path / "emotions.txt"
    f.write_text("anger\njoy\nanger \n")
    with pytest.raises(DataError, match="emotions.txt:3: label name 'anger' duplicates line 1"):
        read_label_names(f)


def test_a_stray_quote_on_the_last_line_names_that_line(tmp_path):
    f = tmp_path / "dev.tsv"
    f.write_text('ok text\t1\tid1\nsecond\t2\tid2\n"stray last\t3\tid3\n')
    with pytest.raises(DataError, match="dev.tsv:3: a double quote opens a quoted field that never closes"):
        read_split(f, 28)
