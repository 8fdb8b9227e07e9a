"""emotion-predict, the Python API and the Hugging Face export, on a tiny fine-tuned model."""

import json
import os

import numpy as np
import pytest

from emotion_classifier import EmotionClassifier
from emotion_classifier.predict import main as predict_main


@pytest.fixture
def model_dir(tuned_model):
    return tuned_model  # conftest's: trained once for the session


def test_python_api(model_dir):
    clf = EmotionClassifier.load(model_dir)
    assert clf.labels == ["joy", "anger", "neutral"] and clf.tuned
    probs = clf.predict_proba(["so happy glad", "angry mad", "the day was ok"])
    assert probs.shape == (3, 3) and ((probs >= 0) & (probs <= 1)).all()
    out = clf.predict(["so happy glad"], all_scores=True)
    assert [label for label, _ in out[0]] != [] and len(out[0]) == 3
    above = clf.predict(["so happy glad"])[0]
    assert all(score >= clf.thresholds[clf.labels.index(label)] for label, score in above)


def test_empty_and_huge_texts(model_dir):
    clf = EmotionClassifier.load(model_dir)
    probs = clf.predict_proba(["", "   ", "happy " * 20_000, "happy " * 30])
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs[2], probs[3], atol=1e-5)  # both truncated to max_length tokens


def test_cli_text_prints_json_lines_when_piped(model_dir, capsys):
    predict_main(["--model-dir", str(model_dir), "--text", "so happy", "--text", "mad angry", "--all-scores"])
    lines = capsys.readouterr().out.splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["text"] for r in recs] == ["so happy", "mad angry"] and len(recs[0]["scores"]) == 3


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_cli_file_in_file_out(model_dir, tmp_path, suffix):
    texts = [f"happy day {i}" if i % 2 else f"angry thing, {i}" for i in range(1000)]
    src = tmp_path / f"in{suffix}"
    if suffix == ".txt":
        src.write_text("\n".join(texts) + "\n")
    elif suffix == ".csv":
        src.write_text("id,text\n" + "\n".join(f'{i},"{t}"' for i, t in enumerate(texts)) + "\n")
    else:
        src.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    out = tmp_path / "out.jsonl"
    predict_main(["--model-dir", str(model_dir), "--input", str(src), "--output", str(out)])
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 1000 and recs[7]["text"] == texts[7]
    out_csv = tmp_path / "out.csv"
    predict_main(["--model-dir", str(model_dir), "--input", str(src), "--output", str(out_csv), "--all-scores"])
    assert out_csv.read_text().splitlines()[0] == "text,labels,score_joy,score_anger,score_neutral"


def test_invalid_utf8_line(model_dir, tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_bytes(b"happy\nfine\n\xff\xfe broken\nangry\n")
    with pytest.raises(SystemExit) as e:
        predict_main(["--model-dir", str(model_dir), "--input", str(src)])
    assert e.value.code == 1
    assert f"{src}:3: invalid UTF-8" in capsys.readouterr().err
    predict_main(["--model-dir", str(model_dir), "--input", str(src), "--skip-invalid", "--json"])
    cap = capsys.readouterr()
    recs = [json.loads(line) for line in cap.out.splitlines()]
    assert [r["text"] for r in recs] == ["happy", "fine", "", "angry"]  # row 3 kept, empty: rows stay in step
    assert recs[2]["labels"] == [] and f"{src}:3: invalid UTF-8, line skipped" in cap.err


def test_missing_or_incompatible_model_dir(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        predict_main(["--model-dir", str(tmp_path / "nope"), "--text", "hi"])
    err = capsys.readouterr().err
    assert "no trained model" in err and "`dvc pull`" in err and "`make repro`" in err
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"")
    (old / "config.json").write_text(json.dumps({"format_version": 0}))
    with pytest.raises(SystemExit):
        predict_main(["--model-dir", str(old), "--text", "hi"])
    assert "incompatible version" in capsys.readouterr().err


def test_output_is_atomic(model_dir, tmp_path, monkeypatch):
    import emotion_classifier.predict as P

    out = tmp_path / "out.jsonl"
    out.write_text("previous complete output\n")
    calls = {"n": 0}
    real = json.dumps

    def failing(obj, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt  # interrupted mid-write
        return real(obj, **kw)

    monkeypatch.setattr(P.json, "dumps", failing)
    with pytest.raises(KeyboardInterrupt):
        predict_main(["--model-dir", str(model_dir), "--text", "a", "--text", "b", "--text", "c",
                      "--output", str(out)])
    assert out.read_text() == "previous complete output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


@pytest.fixture(params=["avx2", "amx"])
def cpu_kind(request, monkeypatch):
    """Each precision test runs as on a CPU without and with native bf16, whatever this one has."""
    from emotion_classifier import hardware

    monkeypatch.setattr(hardware, "cpu_kind", lambda: request.param)
    return request.param


def test_quantized_model_predicts(model_dir, cpu_kind):
    a = EmotionClassifier.load(model_dir, precision="fp32").predict_proba(["so happy", "mad"])
    q = EmotionClassifier.load(model_dir, quantize=True, precision="auto")  # int8 weights, fp32 activations
    assert q.precision == "fp32" and q.describe()["quantized"]
    b = q.predict_proba(["so happy", "mad"])
    assert b.shape == a.shape and np.abs(a - b).max() < 0.1


def test_cli_quantize_and_precision(model_dir, cpu_kind, capsys):
    predict_main(["--model-dir", str(model_dir), "--text", "so happy", "--quantize", "--precision", "auto"])
    assert json.loads(capsys.readouterr().out)["text"] == "so happy"
    with pytest.raises(SystemExit) as e:
        predict_main(["--model-dir", str(model_dir), "--text", "so happy", "--quantize", "--precision", "bf16"])
    assert e.value.code == 1
    assert capsys.readouterr().err.startswith("error: quantize runs int8 weights with fp32 activations")


def test_auto_precision_is_bf16_only_where_native(model_dir, cpu_kind):
    clf = EmotionClassifier.load(model_dir, precision="auto", device="cpu")
    assert clf.precision == ("bf16" if cpu_kind == "amx" else "fp32")
    assert EmotionClassifier.load(model_dir, device="cpu").precision == "fp32"  # the default: the same everywhere


def test_bf16_predict_is_close_to_fp32(model_dir):
    texts = ["so happy glad", "angry mad hate", "", "the movie was ok [NAME]"]
    fp32 = EmotionClassifier.load(model_dir, precision="fp32").predict_proba(texts)
    bf16 = EmotionClassifier.load(model_dir, precision="bf16")
    assert bf16.describe()["precision"] == "bf16"
    np.testing.assert_allclose(bf16.predict_proba(texts), fp32, atol=2e-2)  # bf16 keeps ~3 significant digits


def test_cli_device_errors_are_one_line(model_dir, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device, msg in (("cuda", "device is cuda but no CUDA device is visible"),
                        ("gpu", "expected auto, cpu, cuda or cuda:N")):
        with pytest.raises(SystemExit) as e:
            predict_main(["--model-dir", str(model_dir), "--text", "hi", "--device", device])
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith("error: ") and msg in err, err


@pytest.mark.cuda
def test_cuda_scores_match_cpu(model_dir):
    texts = ["so happy glad", "angry mad hate", "", "the movie was ok [NAME]"]
    cpu = EmotionClassifier.load(model_dir, device="cpu").predict_proba(texts)
    gpu = EmotionClassifier.load(model_dir, device="cuda")
    assert gpu.device.type == "cuda" and gpu.describe()["gpu"]
    np.testing.assert_allclose(gpu.predict_proba(texts), cpu, atol=1e-5)  # fp32 is fp32 (TF32 off)


def test_export_matches_transformers_pipeline(model_dir, tmp_path):
    from transformers import pipeline as hf_pipeline

    from emotion_classifier.export import export

    out = export(model_dir, tmp_path / "hf")
    texts = ["so happy glad", "angry mad hate", "", "the movie was ok [NAME]"]
    pipe = hf_pipeline("text-classification", model=str(out), top_k=None, device="cpu")
    theirs = pipe(texts, truncation=True, max_length=16)
    theirs = np.array([[{r["label"]: r["score"] for r in res}[n] for n in ("joy", "anger", "neutral")]
                       for res in theirs])
    ours = EmotionClassifier.load(model_dir, precision="fp32", device="cpu").predict_proba(texts)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)  # both fp32: the same model
    ours_bf16 = EmotionClassifier.load(model_dir, precision="bf16", device="cpu").predict_proba(texts)
    np.testing.assert_allclose(ours_bf16, theirs, atol=2e-2)  # bf16 against the pipeline's fp32
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["problem_type"] == "multi_label_classification" and len(cfg["thresholds"]) == 3
    assert cfg["id2label"]["0"] == "joy"


# ---------------------------------------------------------------- bad input: one `error:` line, nothing half-written


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        predict_main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_api_edge_inputs(model_dir):
    clf = EmotionClassifier.load(model_dir)
    assert clf.predict([]) == [] and clf.predict_proba([]).shape == (0, 3)  # before: IndexError
    with pytest.raises(TypeError, match=r"not one string: use predict\(\[text\]\)"):
        clf.predict("some text")  # before: one result per character


@pytest.mark.parametrize("content, message", [
    ('{"text": "fine"}\n{"text": null}\n', 'in.jsonl:2: "text" is null; expected a string'),
    ('{"text": 3}\n', 'in.jsonl:1: "text" is 3; expected a string'),
])
def test_jsonl_text_must_be_a_string(model_dir, tmp_path, capsys, content, message):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    args = ["--model-dir", str(model_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]
    code, out, err = run_cli(args, capsys)
    assert code == 1 and err.strip() == f"error: {tmp_path}/{message}"
    assert not (tmp_path / "o.jsonl").exists()


def test_empty_input_is_a_clear_error(model_dir, tmp_path, capsys):
    src = tmp_path / "empty.txt"
    src.write_text("")
    code, _, err = run_cli(["--model-dir", str(model_dir), "--input", str(src), "--output", str(tmp_path / "o.csv")],
                           capsys)
    assert code == 1 and err.strip() == f"error: {src}: no texts to label"  # before: a usage error, rc 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_csv_with_byte_order_mark(model_dir, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_bytes(b"\xef\xbb\xbftext,id\nso happy,1\n\"mad, angry\",2\n")  # before: no `text` column
    code, out, _ = run_cli(["--model-dir", str(model_dir), "--input", str(src), "--json"], capsys)
    assert code == 0 and [json.loads(line)["text"] for line in out.splitlines()] == ["so happy", "mad, angry"]


def test_output_is_checked_before_any_work(model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("happy\n")
    for out, msg in ((tmp_path, "is a directory"), (tmp_path / "no/such/dir/o.jsonl", "does not exist")):
        code, _, err = run_cli(["--model-dir", str(tmp_path / "no-model"), "--input", str(src), "--output", str(out)],
                               capsys)
        assert code == 1 and err.startswith(f"error: {out}: ") and msg in err, err  # before the (missing) model


def test_read_only_output_is_refused_and_a_mode_is_kept(model_dir, tmp_path, capsys):
    out = tmp_path / "o.jsonl"
    out.write_text("precious\n")
    out.chmod(0o444)
    code, _, err = run_cli(["--model-dir", str(model_dir), "--text", "hi", "--output", str(out)], capsys)
    assert code == 1 and "exists and is read-only; remove it or choose another --output" in err
    assert out.read_text() == "precious\n" and (out.stat().st_mode & 0o777) == 0o444
    out.chmod(0o640)
    assert run_cli(["--model-dir", str(model_dir), "--text", "hi", "--output", str(out)], capsys)[0] == 0
    assert json.loads(out.read_text())["text"] == "hi" and (out.stat().st_mode & 0o777) == 0o640


def test_missing_or_stale_thresholds_refuse_unless_fixed(model_dir, tmp_path, capsys):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    th = json.loads((d / "thresholds.json").read_text())
    (d / "thresholds.json").write_text(json.dumps({**th, "weights_sha256": "0" * 64}))
    code, _, err = run_cli(["--model-dir", str(d), "--text", "hi"], capsys)
    assert code == 1 and "thresholds.json: tuned for other weights" in err
    (d / "thresholds.json").unlink()
    code, _, err = run_cli(["--model-dir", str(d), "--text", "hi"], capsys)
    assert code == 1 and "no tuned thresholds; `dvc pull`, or tune them: `dvc repro tune_thresholds`" in err
    code, out, _ = run_cli(["--model-dir", str(d), "--text", "hi", "--thresholds", "fixed"], capsys)
    assert code == 0 and json.loads(out)["text"] == "hi"


@pytest.mark.parametrize("damage, message", [
    ("truncate_weights", "model.safetensors: cannot load the weights"),
    ("random_weights", "model.safetensors: cannot load the weights"),
    ("broken_config", "config.json:1:2: not valid JSON"),
    ("no_tokenizer", "tokenizer_config.json: missing"),
])
def test_damaged_model_dir_is_one_line(model_dir, tmp_path, capsys, damage, message):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    weights = d / "model.safetensors"
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "random_weights":
        weights.write_bytes(os.urandom(5000))
    elif damage == "broken_config":
        (d / "config.json").write_text("{oops")
    else:
        shutil.rmtree(d / "tokenizer")
    code, out, err = run_cli(["--model-dir", str(d), "--text", "hi", "--thresholds", "fixed"], capsys)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert message in err


def test_streaming_keeps_order_and_writes_nothing_on_a_late_error(model_dir, tmp_path, capsys, monkeypatch):
    import emotion_classifier.predict as P

    monkeypatch.setattr(P, "CHUNK", 7)  # many chunks from a small file
    texts = [f"happy day {i}" if i % 3 else f"angry thing {i}" for i in range(50)]
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("\n".join(texts) + "\n")
    assert run_cli(["--model-dir", str(model_dir), "--input", str(src), "--output", str(out)], capsys)[0] == 0
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == texts
    whole = EmotionClassifier.load(model_dir).predict_proba(texts)  # chunking changes no score
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(rec["labels"] == [{"label": lab, "score": round(s, 4)} for lab, s in res]
               for rec, res in zip(got, EmotionClassifier.load(model_dir).decide(whole)))
    src.write_bytes(src.read_bytes() + b"\xff broken\n")  # line 51, after six written chunks
    out.write_text("previous\n")
    code, _, err = run_cli(["--model-dir", str(model_dir), "--input", str(src), "--output", str(out)], capsys)
    assert code == 1 and f"{src}:51: invalid UTF-8" in err
    assert out.read_text() == "previous\n" and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


def test_the_onnx_int8_model_gets_thresholds_tuned_on_its_own_dev_scores(model_dir):
    """int8 shifts scores: with the fp32 thresholds it lost ~.02 dev macro F1, with its own ~.004 (MiniLM)."""
    pytest.importorskip("onnxruntime")
    tuned = json.loads((model_dir / "thresholds.json").read_text())
    int8 = tuned["onnx_int8"]["strategies"]
    assert set(int8) == set(tuned["strategies"]) and len(int8["per_label"]) == 3
    clf = EmotionClassifier.load(model_dir, backend="onnx", quantize=True)
    assert clf.thresholds.tolist() == pytest.approx(int8["per_label"])
    assert EmotionClassifier.load(model_dir).thresholds.tolist() == pytest.approx(tuned["strategies"]["per_label"])
    metrics = json.loads((model_dir.parent / "metrics/thresholds.json").read_text())
    assert 0 <= metrics["onnx_int8_per_label_dev_macro_f1"] <= 1
