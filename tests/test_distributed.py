"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) against one process, on a tiny BERT.

Tolerance: 2 processes compute the same global batches as 1, split in two, and DDP averages the two
halves' gradients (weighted to the global batch mean), so the only differences are float32 rounding:
the order of the sums in the all-reduce and in the smaller matrix products. After 24 Adam steps the
largest weight difference measured 4.8e-7 (AMD EPYC, AVX512); the test allows 2e-5, 40x that, for
other CPUs' kernels. Dropout is off, as each rank draws its own masks.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from emotion_classifier.data import load_prepared
from emotion_classifier.params import resolve, to_tree, with_overrides
from emotion_classifier.training.loop import fit

from .conftest import ROOT, tiny_params

pytestmark = pytest.mark.slow  # DVC, torchrun or benchmark runs: `make test-fast` skips them


@pytest.fixture
def params_for(tiny_encoder, tiny_prepared):
    def make(name, **train):
        return with_overrides(tiny_params(tiny_encoder, name, **train), {
            "data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.dropout": 0.0,
            "model.transformer_finetune.encoder_dropout": 0.0, "model.transformer_featureextract.dropout": 0.0})
    return make


def torchrun(tmp_path, params, processes=2, timeout=240, **spec):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"params": to_tree(params), "out": str(out), **spec}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           str(ROOT / "tests/ddp_worker.py"), str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp_path)
    return r, out


def weights(model_dir):
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


def one_process(tmp_path, params):
    splits, names = load_prepared(params.data.prepared_dir)
    return fit(resolve(params), splits, names, model_dir=tmp_path / "models", metrics_path=tmp_path / "train.json",
               live_dir=None, checkpoint_root=tmp_path / "ckpt", feature_cache=tmp_path / "feat")


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_two_processes_train_the_one_process_weights(tmp_path, params_for):
    p = params_for("transformer_finetune", epochs=2, batch_size=8, scheduler="linear", warmup_ratio=0.2)
    single = one_process(tmp_path / "one", p)
    r, out = torchrun(tmp_path / "two", p)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    diff = max_diff(weights(tmp_path / "one/models"), weights(out / "models"))
    assert diff < 2e-5, f"max |weight difference| 1 vs 2 processes: {diff:.2e}"
    m = json.loads((out / "train.json").read_text())
    record = json.loads((out / "models/config.json").read_text())["train"]  # the whole run record
    assert m["world_size"] == 2 and single["world_size"] == 1 and record["world_size"] == 2
    assert record["dev_loss"] == pytest.approx(single["dev_loss"], abs=1e-5)


def test_kill_and_resume_under_two_processes(tmp_path, params_for):
    p = params_for("bilstm_maxpool", epochs=3, batch_size=8)
    r, full = torchrun(tmp_path / "full", p)
    assert r.returncode == 0, r.stderr[-3000:]
    r, out = torchrun(tmp_path / "cut", p, stop_after_epochs=1)
    assert r.returncode == 0 and json.loads((out / "result.json").read_text()) == {"stopped_after_epoch": 1}
    r, out = torchrun(tmp_path / "cut", p)
    assert r.returncode == 0 and "resuming from" in r.stdout + r.stderr
    assert max_diff(weights(full / "models"), weights(out / "models")) == 0.0  # same ranks, same order: exact


def test_feature_extract_encodes_once(tmp_path, params_for):
    p = params_for("transformer_featureextract", epochs=1, batch_size=8)
    r, out = torchrun(tmp_path, p)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((out / "feat").iterdir())) == 2  # train and dev, written by rank 0 alone
    assert json.loads((out / "train.json").read_text())["world_size"] == 2


def test_a_dead_rank_stops_the_run(tmp_path, params_for):
    p = params_for("bilstm_maxpool", epochs=3, batch_size=8)
    t0 = time.time()
    r, out = torchrun(tmp_path, p, die_after_epoch=1)
    assert r.returncode != 0 and time.time() - t0 < 120
    assert "exitcode  : 3" in r.stderr or "exit code 3" in r.stderr, r.stderr[-2000:]
    assert not (out / "models").exists()
