"""Each benchmark's main path on a tiny model and tiny data, so none can silently break.

The figures they print for the README come from the real runs named there; here only that they run
and that their side-by-side comparisons hold together."""

import importlib.util
import json

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_benchmark_builds_an_exportable_model_itself(tiny_encoder, tiny_raw, capsys):
    # no --model-dir: whatever pooling params.yaml says, the fresh model must export for the pipeline row
    out = load("inference").main(["--encoder", str(tiny_encoder), "--data", str(tiny_raw), "--sentences", "20",
                                  "--device", "cpu", "--bf16", "--latency"])
    assert set(out["latency"]) == set(out["speed"]) - {"pipeline"}
    assert all(0 < t["p50_ms"] <= t["p99_ms"] for t in out["latency"].values())
    assert set(out["threads"]["fp32"]) == set(range(1, out["threads"]["fp32"].__len__() + 1))
    assert set(out["speed"]) == {"fp32", "bf16", "int8 (--quantize)", "onnxruntime fp32", "onnxruntime int8",
                                 "pipeline"}
    assert all(v > 0 for v in out["speed"].values())
    assert out["max_diff"]["fp32 vs pipeline"] < 1e-4  # the same model, both fp32
    assert out["max_diff"]["onnxruntime fp32 vs fp32"] < 1e-5
    assert out["max_diff"]["bf16 vs fp32"] < 2e-2 and out["max_diff"]["int8 (--quantize) vs fp32"] < 0.1
    assert "x the pipeline" in capsys.readouterr().out


def test_inference_benchmark_times_the_pipeline_for_a_mean_pooled_model(tiny_encoder, tiny_raw, tmp_path, capsys):
    bench = load("inference")
    labels = (tiny_raw / "emotions.txt").read_text().split()
    model_dir = bench.fresh_model_dir(tmp_path / "m", str(tiny_encoder), labels, "transformer_finetune",
                                      pooling="mean")
    from emotion_classifier.model_dir import weights_hash

    (model_dir / "thresholds.json").write_text(json.dumps({"weights_sha256": weights_hash(model_dir),
                                                           "strategies": {"per_label": [0.5, 0.4, 0.6]}}))
    with pytest.warns(UserWarning, match="no thresholds tuned for the int8 model"):  # a hand-made thresholds.json
        out = bench.main(["--model-dir", str(model_dir), "--data", str(tiny_raw), "--sentences", "20", "--device",
                          "cpu", "--dev-f1"])
    assert out["speed"]["pipeline"] > 0 and "fp32 vs pipeline" not in out["max_diff"]
    assert set(out["dev_macro_f1"]) == set(out["speed"]) - {"pipeline"}
    assert all(0 <= f <= 1 for f in out["dev_macro_f1"].values())
    printed = capsys.readouterr().out
    assert "timed on a fresh pooler model" in printed and "dev macro F1" in printed


def test_train_throughput_benchmark(tiny_encoder, tiny_raw):
    out = load("train_throughput").main([
        "--data", str(tiny_raw), "--examples", "40", "--batch-size", "8", "-S", f"model.encoder={tiny_encoder}",
        "-S", "train.precision=fp32", "-S", "train.device=cpu", "-S", "model.max_length=16"])
    contended = out.pop("contended")
    assert set(out) == {"ours", "trainer_defaults", "trainer_same_batch"} and min(out.values()) > 0
    assert contended in (True, False)


def test_train_throughput_benchmark_vs(tiny_encoder, tiny_raw):
    out = load("train_throughput").main([
        "--data", str(tiny_raw), "--examples", "40", "--batch-size", "8", "-S", f"model.encoder={tiny_encoder}",
        "-S", "train.precision=fp32", "-S", "train.device=cpu", "-S", "model.max_length=16",
        "--vs", "train.rdrop_alpha=1", "--no-trainer"])
    out.pop("contended")
    assert set(out) == {"ours", "ours_vs"} and min(out.values()) > 0


def test_gpu_check_runs_its_path_on_cpu(tiny_encoder, tiny_raw):
    out = load("gpu_check").main([
        "--device", "cpu", "--skip-tests", "--encoder", str(tiny_encoder), "--data", str(tiny_raw),
        "--tiny-examples", "30", "--epoch-examples", "40", "--sentences", "20", "--ddp", "2"])
    tiny = out["tiny_pipeline"]
    assert tiny["device"] == "cpu" and tiny["inference_device"] == "cpu" and 0 <= tiny["test_macro_f1"] <= 1
    assert out["full_epoch"]["train_examples_per_s"] > 0 and out["machine"]["cpu_kind"]
    assert out["inference_sentences_per_s"]["fp32"] > 0
    assert [r["world_size"] for r in out["ddp_epoch"].values()] == [1, 2]  # the N-GPU step, as gloo processes


def test_determinism_benchmark(tiny_encoder, tiny_raw):
    out = load("determinism").main(["--runs", "2", "--examples", "30", "--epochs", "1", "--precisions", "fp32",
                                    "--threads", "1", "--encoder", str(tiny_encoder), "--data", str(tiny_raw)])
    assert out == {("fp32", "1"): out[("fp32", "1")]} and len(out[("fp32", "1")]) == 1  # fp32: bit-identical


def test_predict_memory_benchmark(tiny_encoder, tiny_raw):
    out = load("predict_memory").main(["--encoder", str(tiny_encoder), "--data", str(tiny_raw), "--lines", "50,500"])
    assert set(out) == {50, 500} and all(r["peak_rss_mb"] > 10 and r["sentences_per_s"] > 0 for r in out.values())


def test_contention_benchmark(tiny_encoder, tiny_raw, capsys):
    out = load("contention").main([
        "--data", str(tiny_raw), "--examples", "40", "--force", "--set", f"model.encoder={tiny_encoder}",
        "--set", "train.precision=fp32", "--set", "train.device=cpu", "--set", "model.max_length=16",
        "--set", "train.batch_size=8", "--set", "model.bilstm_maxpool.embedding_dim=32",
        "--set", "model.bilstm_maxpool.hidden_size=16"])
    assert set(out["rows"]) == {"alone", "beside a busy loop", "alone, 1 thread", "beside, 1 thread"}
    assert out["rows"]["alone, 1 thread"]["threads"] == 1 and min(r["batches_per_s"] for r in out["rows"].values()) > 0
    assert "slower than alone" in capsys.readouterr().out


def test_a_busy_cpu_marks_a_benchmark_contended_or_stops_it(tiny_encoder, tiny_raw, capsys):
    """Figures timed beside another job must say so: a busy loop runs beside the check and the inference benchmark."""
    import subprocess
    import sys

    cpuload = load("cpuload")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with pytest.raises(SystemExit, match="the CPU is not idle"):
            load("inference").main(["--encoder", str(tiny_encoder), "--data", str(tiny_raw), "--sentences", "8",
                                    "--device", "cpu", "--strict"])
        with cpuload.watch() as state:
            pass
    finally:
        busy.kill()
        busy.wait()
    assert state["contended"] is True and "CONTENDED" in capsys.readouterr().out
    assert any("while True" in p for p in state["before"]["processes"])  # names the competitor


def test_serve_benchmark_loads_three_servers_side_by_side(tiny_encoder, tiny_raw):
    out = load("serve").main(["--encoder", str(tiny_encoder), "--data", str(tiny_raw), "--clients", "1,4",
                              "--seconds", "0.5", "--soak", "0.5"])
    assert len(out["results"]) == 3 and all(set(rows) == {1, 4} for rows in out["results"].values())
    for rows in out["results"].values():
        assert all(r["errors"] == 0 and r["requests"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] for r in rows.values())
    assert set(out["ratios"]) == {"(a)/(c) req/s at 4", "(a)/(b) req/s at 4"} and all(out["ratios"].values())
    assert out["soak"]["errors"] == 0 and out["soak"]["rss_mb_end"] > 0
