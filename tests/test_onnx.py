"""ONNX export of every registered architecture, and the onnxruntime backend, against torch's scores."""

import json

import numpy as np
import pytest

from emotion_classifier import architectures
from emotion_classifier.encoder import load_tokenizer
from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.model_dir.model import build, save
from emotion_classifier.params import resolve

from .conftest import TINY_LABELS, tiny_params

ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]' (make test installs it)")

TEXTS = ["so happy", "I hate this awful day", "", "the movie was ok , fine", "love love love it so very much"]


@pytest.fixture(scope="module", params=list(architectures.REGISTRY))
def model_dir(request, tmp_path_factory, tiny_encoder):
    """An untrained model of each architecture (parity does not need training), saved as train saves it."""
    import torch

    p = tiny_params(tiny_encoder, request.param)
    tok = load_tokenizer(p.model.encoder)
    torch.manual_seed(0)
    model, cfg = build(resolve(p).model, tok, TINY_LABELS)
    d = tmp_path_factory.mktemp(request.param)
    save(model, cfg, tok, d)
    return d


def test_onnx_export_gives_the_torch_scores(model_dir, tmp_path):
    from emotion_classifier.export import export_onnx

    torch_probs = EmotionClassifier.load(model_dir, strategy="fixed").predict_proba(TEXTS)
    out = export_onnx(model_dir, tmp_path / "onnx", strategy="fixed", quantize=True)
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["id2label"]["0"] == "joy"
    assert config["thresholds"] == [0.5] * 3
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))  # the exported tokenizer, mask tokens included
    assert tok.convert_tokens_to_ids("[NAME]") != tok.unk_token_id
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    enc = tok(TEXTS, padding=True, truncation=True, max_length=config["max_length"], return_tensors="np")
    logits = session.run(["logits"], {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), torch_probs, atol=1e-5)  # one padded batch: dynamic axes
    assert (out / "model.int8.onnx").stat().st_size > 0


def test_onnx_backend_scores_like_torch_and_quantizes(model_dir):
    torch_probs = EmotionClassifier.load(model_dir, strategy="fixed").predict_proba(TEXTS)
    clf = EmotionClassifier.load(model_dir, strategy="fixed", backend="onnx", batch_size=2)
    np.testing.assert_allclose(clf.predict_proba(TEXTS), torch_probs, atol=1e-5)
    assert clf.describe()["backend"] == "onnx"
    int8 = EmotionClassifier.load(model_dir, strategy="fixed", backend="onnx", quantize=True).predict_proba(TEXTS)
    assert int8.shape == torch_probs.shape and np.abs(int8 - torch_probs).max() < 0.2


def test_predict_cli_with_the_onnx_backend(tiny_encoder, tmp_path, capsys):
    import torch

    from emotion_classifier.predict import main

    p = tiny_params(tiny_encoder, "transformer_finetune")
    tok = load_tokenizer(p.model.encoder)
    torch.manual_seed(0)
    model, cfg = build(resolve(p).model, tok, TINY_LABELS)
    save(model, cfg, tok, tmp_path / "m")
    main(["--model-dir", str(tmp_path / "m"), "--thresholds", "fixed", "--backend", "onnx", "--all-scores",
          "--json", "--text", "so happy"])
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    want = EmotionClassifier.load(tmp_path / "m", strategy="fixed").predict_proba(["so happy"])[0]
    assert [s for _, s in sorted(row["scores"].items(), key=lambda kv: TINY_LABELS.index(kv[0]))] == \
        pytest.approx(want.tolist(), abs=1e-4)  # the CLI writes 4 decimals
    with pytest.raises(ValueError, match="onnx backend runs fp32"):
        EmotionClassifier.load(tmp_path / "m", strategy="fixed", backend="onnx", precision="bf16")


@pytest.mark.parametrize("name", ["transformer_finetune", "transformer_featureextract"])
def test_a_transformer_is_served_as_a_fused_graph_that_scores_like_torch(tiny_encoder, tmp_path, name):
    """Attention, GELU, LayerNorm with its residual and the embeddings fused (onnxruntime's transformer optimizer);
    the same logits as torch within 1e-4. int8 keeps the classifier fp32 (INT8) and the rest quantized."""
    import collections

    import onnx
    import torch

    from emotion_classifier import onnx_backend

    p = tiny_params(tiny_encoder, name)
    tok = load_tokenizer(p.model.encoder)
    torch.manual_seed(0)
    model, _ = build(resolve(p).model, tok, TINY_LABELS)
    model.eval()
    path = onnx_backend.inference_graph(model, tok, tmp_path / "model.onnx")
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] >= 3 and ops["EmbedLayerNormalization"] == 1, ops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no intermediate graph left behind
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(enc["input_ids"], enc["attention_mask"]).numpy()
    got = onnx_backend.OrtModel(path)(enc["input_ids"], enc["attention_mask"]).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    int8 = onnx_backend.inference_graph(model, tok, tmp_path / "model.int8.onnx", int8=True)
    nodes = onnx.load(str(int8)).graph.node
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "QAttention") for n in nodes)
    assert all("classifier" not in n.name or n.op_type in ("Gemm", "MatMul", "Add") for n in nodes)


def test_int8_thresholds_say_where_they_were_tuned_and_are_refused_elsewhere(tuned_model, tmp_path, capsys):
    """Issue 49 (7): int8 scores move with onnxruntime's version, the quantization policy and the CPU kind; the
    thresholds tuned on them record all three, and a model whose record differs from here is refused in one line
    (`--backend auto` then serves torch fp32, and says why)."""
    import shutil

    from emotion_classifier.inference import StaleInt8Thresholds
    from emotion_classifier.model_dir import ONNX_INT8, THRESHOLDS, read_tuned, write_tuned
    from emotion_classifier.onnx_backend import int8_record
    from emotion_classifier.serving.options import has_int8_thresholds

    d = shutil.copytree(tuned_model, tmp_path / "models")
    tuned = read_tuned(d)
    assert tuned[ONNX_INT8]["tuned_with"] == int8_record()
    assert has_int8_thresholds(d)
    elsewhere = {**tuned[ONNX_INT8], "tuned_with": {**int8_record(), "cpu_kind": "a-cpu-of-another-kind"}}
    write_tuned(d, {k: v for k, v in {**tuned, ONNX_INT8: elsewhere}.items() if k != "weights_sha256"})
    with pytest.raises(StaleInt8Thresholds) as e:
        EmotionClassifier.load(d, backend="onnx", quantize=True)
    assert f"{d / THRESHOLDS}" in str(e.value) and "cpu_kind a-cpu-of-another-kind ->" in str(e.value)
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert not has_int8_thresholds(d) and "cpu_kind a-cpu-of-another-kind" in capsys.readouterr().err
    EmotionClassifier.load(d)  # the fp32 thresholds are not int8's: torch still loads


def test_the_onnx_backend_runs_where_its_device_says(monkeypatch):
    """Issue 49 (8): onnxruntime took CUDA whenever the package had it, whatever `device` said."""
    from emotion_classifier import onnx_backend
    from emotion_classifier.errors import UserError

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_backend.providers("cpu") == ["CPUExecutionProvider"]
    assert onnx_backend.providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="needs onnxruntime-gpu"):
        onnx_backend.providers("cuda")
