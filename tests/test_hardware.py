"""The device and precision policy (hardware.py): answers that do not depend on this machine's CPU."""

import warnings

import pytest
import torch

from emotion_classifier import hardware
from emotion_classifier.errors import UserError
from emotion_classifier.params import ParamsError, from_tree, with_overrides

from .conftest import ROOT, tiny_params, train_and_tune


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory, tiny_encoder, tiny_prepared):
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool", epochs=1), {"data.prepared_dir": str(tiny_prepared)})
    return train_and_tune(tmp_path_factory.mktemp("threads"), p)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("kind, auto", [("amx", "bf16"), ("avx512_bf16", "bf16"), ("avx2", "fp32"),
                                        ("default", "fp32")])
def test_auto_precision_follows_native_bf16(monkeypatch, kind, auto):
    monkeypatch.setattr(hardware, "cpu_kind", lambda: kind)
    cpu = torch.device("cpu")
    assert hardware.resolve_precision("auto", cpu) == auto
    assert hardware.resolve_precision("fp32", cpu) == "fp32"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert hardware.resolve_precision("bf16", cpu, "train.precision") == "bf16"
    emulated = auto == "fp32"
    assert any("no native bf16" in str(w.message) for w in caught) == emulated


def test_device_spellings(no_cuda):
    assert hardware.resolve_device("auto") == torch.device("cpu")
    assert hardware.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="train.device is cuda:1 but no CUDA device is visible"):
        hardware.resolve_device("cuda:1", "train.device")
    with pytest.raises(UserError, match="expected auto, cpu, cuda or cuda:N"):
        hardware.resolve_device("gpu")


def test_params_accept_the_same_device_spellings():
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for ok in ("auto", "cpu", "cuda", "cuda:3"):
        raw["train"]["device"] = raw["evaluate"]["device"] = ok
        from_tree(raw)
    raw["evaluate"]["device"] = "gpu"
    with pytest.raises(ParamsError, match="'evaluate.device' is 'gpu'; expected auto, cpu, cuda or cuda:N"):
        from_tree(raw)


def test_describe_names_what_produced_the_numbers():
    d = hardware.describe(torch.device("cpu"), "fp32")
    assert d["device"] == "cpu" and d["precision"] == "fp32" and d["threads"] >= 1
    assert d["cpu_kind"] == hardware.cpu_kind() and "gpu" not in d


def test_rng_state_round_trip():
    state = hardware.rng_state(torch.device("cpu"))
    a = torch.rand(3)
    hardware.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


def test_scoring_defaults_to_fp32_training_to_auto():
    import yaml

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["evaluate"]["precision"] == "fp32" and raw["train"]["precision"] == "auto"


@pytest.fixture
def fresh_threads(monkeypatch):
    """Each test chooses threads anew; torch's count is restored after it."""
    before = torch.get_num_threads()
    # as if no caller had set it yet: torch's own choice, a count no test sets (under xdist `before` is already the
    # worker's 1, which a test's "caller chose 1" could not be told from)
    torch.set_num_threads(5)
    monkeypatch.setattr(hardware, "_TORCH_DEFAULT", 5)
    for var in hardware.THREADS_ENV:
        monkeypatch.delenv(var, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)


def test_an_explicit_thread_setting_is_respected(fresh_threads):
    """Before: use_all_cores() reset torch to every core on each predict call, whatever OMP_NUM_THREADS said."""
    fresh_threads.setattr(hardware, "n_cores", lambda: 4)
    assert hardware.threads() == 4 and hardware.threads(processes=2) == 2  # cores shared among processes
    fresh_threads.setenv("OMP_NUM_THREADS", "1")
    assert hardware.threads() == 1 and hardware.threads(processes=2) == 1  # a launcher's per-process setting
    fresh_threads.setenv("EMOTION_CLASSIFIER_THREADS", "3")
    assert hardware.threads() == 3  # ours first
    assert hardware.use_threads() == 3 and torch.get_num_threads() == 3
    torch.set_num_threads(1)  # the caller's own choice
    assert hardware.use_threads() == 1  # stands: never reset per call
    assert hardware.use_threads(2) == 2  # a --threads flag sets it
    fresh_threads.setenv("EMOTION_CLASSIFIER_THREADS", "two")
    with pytest.raises(UserError, match=r"\$EMOTION_CLASSIFIER_THREADS is 'two'"):
        hardware.threads()


def test_prediction_keeps_the_callers_thread_count(fresh_threads, trained_tiny):
    from emotion_classifier.inference import EmotionClassifier

    clf = EmotionClassifier.load(trained_tiny, device="cpu")
    torch.set_num_threads(1)
    clf.predict(["so happy", "awful"])
    assert torch.get_num_threads() == 1


def test_a_one_off_job_takes_the_cores_left_idle(fresh_threads):
    fresh_threads.setattr(hardware, "n_cores", lambda: 2)
    fresh_threads.setattr(hardware.os, "cpu_count", lambda: 2)
    fresh_threads.setattr(hardware, "cpu_busy", lambda seconds=1.0: 0.5)  # another job holds one core
    assert hardware.free_threads() == 1
    fresh_threads.setattr(hardware, "cpu_busy", lambda seconds=1.0: 0.02)
    assert hardware.free_threads() == 2
    fresh_threads.setenv("OMP_NUM_THREADS", "2")
    fresh_threads.setattr(hardware, "cpu_busy", lambda seconds=1.0: 1.0)
    assert hardware.free_threads() == 2  # an explicit setting wins
