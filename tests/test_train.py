import dataclasses
import json

import numpy as np
import pytest
import torch

from emotion_classifier import losses
from emotion_classifier import metrics as M
from emotion_classifier.architectures import REGISTRY, get
from emotion_classifier.architectures.layers import pool
from emotion_classifier.batching import TokenData, bucket_batches, pad, predict_logits
from emotion_classifier.data import label_matrix, load_prepared
from emotion_classifier.losses.asymmetric import asymmetric_loss
from emotion_classifier.losses.bce import positive_weights
from emotion_classifier.losses.distribution_balanced import distribution_balanced_loss as db_loss
from emotion_classifier.model_dir.model import load
from emotion_classifier.params import ParamsError, resolve, with_overrides
from emotion_classifier.training.loop import batch_loss, fit

from .conftest import tiny_params


def _fit(tmp_path, params, **kw):
    splits, names = load_prepared(params.data.prepared_dir)
    return fit(resolve(params), splits, names, model_dir=tmp_path / "models", metrics_path=tmp_path / "train.json",
               live_dir=tmp_path / "dvclive", checkpoint_root=tmp_path / "ckpt", feature_cache=tmp_path / "feat",
               **kw)


@pytest.fixture
def params_for(tiny_encoder, tiny_prepared):
    def make(name, arch=None, **train):
        """tiny_params on the tiny data; `arch`: overrides of the architecture's section."""
        return with_overrides(tiny_params(tiny_encoder, name, **train), {
            "data.prepared_dir": str(tiny_prepared), **{f"model.{name}.{k}": v for k, v in (arch or {}).items()}})
    return make


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_architecture_trains_and_reloads(tmp_path, params_for, name):
    p = params_for(name, epochs=3)
    result = _fit(tmp_path, p)
    summary = json.loads((tmp_path / "dvclive/metrics.json").read_text())
    assert summary["step"] == 2 and "dev_macro_f1" in summary
    plots = (tmp_path / "dvclive/plots/metrics/train_loss.tsv").read_text().splitlines()
    losses = [float(line.split("\t")[-1]) for line in plots[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    m = json.loads((tmp_path / "train.json").read_text())
    assert m["epochs_run"] == 3 and m["params_total"] > 0 and m["train_examples_per_s"] > 0
    assert result["best_epoch"] >= 1

    # save -> load gives identical logits
    model, cfg, tok = load(tmp_path / "models")
    assert cfg["name"] == name and tok.convert_tokens_to_ids("[NAME]") != tok.unk_token_id
    assert get(name).output_layer(model).out_features == len(cfg["labels"])  # the logits' layer
    splits, _ = load_prepared(p.data.prepared_dir)
    ids = tok(list(splits["dev"]["text"]), truncation=True, max_length=16)["input_ids"]
    data = TokenData(ids, tok.pad_token_id)
    a = predict_logits(model, data, 8, torch.device("cpu"), "fp32")
    model2, _, _ = load(tmp_path / "models")
    b = predict_logits(model2, data, 5, torch.device("cpu"), "fp32")  # other batching, same logits
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, params_for):
    p = params_for("transformer_finetune", epochs=3, scheduler="linear", warmup_ratio=0.2)
    full = _fit(tmp_path / "a", p)
    assert _fit(tmp_path / "b", p, stop_after_epochs=1) == {"stopped_after_epoch": 1}
    resumed = _fit(tmp_path / "b", p)
    for k in ("dev_loss", "dev_micro_f1", "dev_macro_f1", "best_epoch", "epochs_run"):
        assert resumed[k] == pytest.approx(full[k], abs=1e-4), k
    live = (tmp_path / "b/dvclive/plots/metrics/dev_loss.tsv").read_text().splitlines()
    assert len(live) == 1 + 3  # the replayed epoch and the two new ones


@pytest.mark.parametrize("name", ["bilstm_maxpool", "transformer_finetune"])
def test_a_repeated_run_writes_the_same_bytes(tmp_path, params_for, name):
    """The model directory (a cached DVC output) is a function of params, data, code and hardware: no timings,
    no paths, so a fresh clone's `dvc repro` leaves it, and dvc.lock, as they were."""
    p = params_for(name)
    a, b = _fit(tmp_path / "a", p), _fit(tmp_path / "b", p)
    assert (a["dev_loss"], a["dev_macro_f1"]) == (b["dev_loss"], b["dev_macro_f1"])
    files = sorted(f.relative_to(tmp_path / "a/models") for f in (tmp_path / "a/models").rglob("*") if f.is_file())
    assert {"config.json", "model.safetensors"} <= {str(f) for f in files}
    for f in files:
        assert (tmp_path / "a/models" / f).read_bytes() == (tmp_path / "b/models" / f).read_bytes(), f
    config = (tmp_path / "a/models/config.json").read_text()
    assert "time_s" not in config and str(tmp_path) not in config and "_name_or_path" not in config


@pytest.mark.parametrize("loss", ["weighted_bce", "focal", "asl", "distribution_balanced"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_losses_and_optimizers_run(tmp_path, params_for, loss, optimizer):
    r = _fit(tmp_path, params_for("bilstm_lasttoken", epochs=1, loss=loss, optimizer=optimizer, scheduler="cosine"))
    assert np.isfinite(r["dev_loss"])


def test_asymmetric_loss_against_its_definition():
    logits = torch.tensor([[2.0, -1.0, -4.0], [0.5, 0.0, 1.5]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    # no focusing, no clip: plain BCE
    assert asymmetric_loss(logits, y, 0.0, 0.0, 0.0).item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y).item(), rel=1e-6)
    p = torch.sigmoid(logits)
    p_neg = (p - 0.05).clamp(min=0)
    by_hand = -(y * (1 - p) * torch.log(p) + (1 - y) * p_neg ** 4 * torch.log(1 - p_neg)).mean()
    assert asymmetric_loss(logits, y, 1.0, 4.0, 0.05).item() == pytest.approx(by_hand.item(), rel=1e-6)
    # a negative below the clip costs nothing: its gradient is zero
    x = logits.clone().requires_grad_(True)
    asymmetric_loss(x, y, 0.0, 4.0, 0.05).backward()
    assert p[0, 2] < 0.05 and x.grad[0, 2] == 0 and x.grad[0, 1] > 0


@pytest.mark.parametrize("name", ["transformer_finetune", "transformer_featureextract"])
def test_weighted_bce_model_saves_calibrated_logits(tmp_path, params_for, monkeypatch, name):
    """The saved model's logits are the trained ones minus log(pos_weight), and its train.json F1s are theirs."""
    p = params_for(name, epochs=1, loss="weighted_bce", precision="fp32")
    calibrated = _fit(tmp_path / "a", p)
    monkeypatch.setitem(losses.REGISTRY, "weighted_bce", dataclasses.replace(losses.get("weighted_bce"),
                                                                            logit_shift=None))
    _fit(tmp_path / "b", p)
    splits, _ = load_prepared(p.data.prepared_dir)
    y_train, y_dev = label_matrix(splits["train"]), label_matrix(splits["dev"])
    shift = np.log(positive_weights(p.loss["weighted_bce"], y_train))
    assert shift.max() > 0.5  # a shift the comparison below would see

    def dev_logits(model_dir):
        model, _, tok = load(model_dir)
        data = TokenData(tok(list(splits["dev"]["text"]), truncation=True, max_length=16)["input_ids"],
                         tok.pad_token_id)
        return predict_logits(model, data, 8, torch.device("cpu"), "fp32")

    a, b = dev_logits(tmp_path / "a/models"), dev_logits(tmp_path / "b/models")
    np.testing.assert_allclose(a, b - shift, atol=1e-5)
    assert calibrated["dev_micro_f1"] == pytest.approx(M.micro_f1(y_dev, a > 0))


def test_weighted_bce_refuses_an_entry_without_its_logits_layer(tmp_path, params_for, monkeypatch):
    import dataclasses

    from emotion_classifier.errors import UserError
    broken = dataclasses.replace(REGISTRY["bilstm_lasttoken"], output_layer=lambda model: model.dropout)
    monkeypatch.setitem(REGISTRY, "bilstm_lasttoken", broken)
    with pytest.raises(UserError, match="bilstm_lasttoken: its entry's output_layer"):
        _fit(tmp_path, params_for("bilstm_lasttoken", epochs=1, loss="weighted_bce"))
    assert not (tmp_path / "models").exists()
    _fit(tmp_path, params_for("bilstm_lasttoken", epochs=1, loss="bce"))  # BCE shifts nothing: it trains


def test_distribution_balanced_loss_against_its_definition():
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    logits = torch.tensor([[2.0, -1.0, -4.0], [0.5, 0.0, 1.5]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    # equally frequent labels, no regularisation: a constant weight per example times BCE
    even = torch.tensor([50.0, 50.0, 50.0])
    got = db_loss(logits, y, even, 100, neg_scale=1.0, bias_scale=0.0)
    w = torch.sigmoid(10 * (torch.tensor([[1.0], [0.5]]) - 0.2)) + 0.1  # one label: share 1; two: 1/2 each
    assert got.item() == pytest.approx((w * bce(logits, y, reduction="none")).mean().item(), rel=1e-6)
    # in an example with a rare and a common label, the rare one weighs more
    x = logits.clone().requires_grad_(True)
    db_loss(x, y, torch.tensor([50.0, 5.0, 80.0]), 100, neg_scale=1.0, bias_scale=0.0).backward()
    assert -x.grad[1, 1] / (1 - torch.sigmoid(x[1, 1])) > -x.grad[1, 2] / (1 - torch.sigmoid(x[1, 2]))
    # negative-tolerant: negatives cost softplus(lambda (z + b)) / lambda, b the prior log-odds x kappa / lambda
    counts = torch.tensor([50.0, 5.0, 80.0])
    z = logits - torch.log(100 / counts - 1) * 0.05 / 2.0
    one = torch.tensor([[0.0, 0.0, 1.0]])  # each label's share: its inverse count over the positive's
    w = torch.sigmoid(10 * (torch.tensor([80 / 50, 80 / 5, 1.0]) - 0.2)) + 0.1
    sp = torch.nn.functional.softplus
    by_hand = (w[:2] * sp(2 * z[0, :2]) / 2).sum() / 3 + w[2] * sp(-z[0, 2]) / 3
    got = db_loss(logits[:1], one, counts, 100, neg_scale=2.0, bias_scale=0.05)
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_rdrop_loss_against_its_definition():
    bce = torch.nn.BCEWithLogitsLoss()
    a, b = torch.tensor([[2.0, -1.0, -4.0]]), torch.tensor([[0.5, 0.0, -3.0]])
    y = torch.tensor([[1.0, 0.0, 0.0]])
    pa, pb = torch.sigmoid(a), torch.sigmoid(b)
    kl = lambda p, q: (p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))).mean()  # noqa: E731
    by_hand = (bce(a, y) + bce(b, y)) / 2 + 0.7 / 4 * (kl(pa, pb) + kl(pb, pa))
    assert batch_loss(bce, torch.cat([a, b]), y, 0.7).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert batch_loss(bce, torch.cat([a, a]), y, 0.7).item() == pytest.approx(bce(a, y).item(), rel=1e-6)
    assert batch_loss(bce, a, y, 0.0).item() == bce(a, y).item()


def test_rdrop_without_dropout_trains_as_without_rdrop(tmp_path, params_for):
    """No dropout: both passes agree, the extra term and its gradient are zero, the same model trains (this fails
    when the doubled batch and its targets are misaligned)."""
    p = params_for("bilstm_maxpool", arch={"dropout": 0.0})
    plain = _fit(tmp_path / "plain", p)
    rdrop = _fit(tmp_path / "rdrop", with_overrides(p, {"train.rdrop_alpha": 1.0}))
    assert rdrop["dev_loss"] == pytest.approx(plain["dev_loss"], rel=1e-4)


def test_rdrop_makes_dropout_passes_agree(tmp_path, params_for):
    p = params_for("bilstm_maxpool", arch={"dropout": 0.5}, epochs=3)
    splits, _ = load_prepared(p.data.prepared_dir)
    gaps = []
    for alpha in (0.0, 20.0):
        _fit(tmp_path / str(alpha), with_overrides(p, {"train.rdrop_alpha": alpha}))
        model, _, tok = load(tmp_path / str(alpha) / "models")
        batch = pad(tok(list(splits["dev"]["text"]), truncation=True, max_length=16)["input_ids"], tok.pad_token_id)
        model.train()  # dropout on: two passes differ
        torch.manual_seed(0)
        with torch.no_grad():
            gaps.append((torch.sigmoid(model(**batch)) - torch.sigmoid(model(**batch))).abs().mean().item())
    assert gaps[1] < 0.7 * gaps[0], gaps  # 0.55 here; 0.4-0.5 under seeds 1-3


def test_finetune_layer_decay_and_unfreezing(tmp_path, params_for):
    p = params_for("transformer_finetune", arch={"layer_lr_decay": 0.8, "unfreeze_layers_per_epoch": 1}, epochs=2)
    r = _fit(tmp_path, p)
    assert r["epochs_run"] == 2


def test_bad_name_and_negative_lr_fail_clearly(params_for):
    p = params_for("bilstm_maxpool")
    with pytest.raises(ParamsError, match="'model.name' is 'gru'; expected one of bilstm_lasttoken"):
        with_overrides(p, {"model.name": "gru"})
    with pytest.raises(ValueError, match="unknown model.name 'gru'; choose one of: bilstm_lasttoken"):
        get("gru")
    with pytest.raises(ParamsError, match="'train.lr' is -0.001; expected a number in"):
        with_overrides(p, {"train.lr": -1e-3})


def test_encoder_init_needs_matching_dim(tmp_path, params_for):
    p = params_for("bilstm_maxpool", arch={"embedding_dim": 20})
    with pytest.raises(ValueError, match="init_embeddings: encoder needs embedding_dim = 32"):
        _fit(tmp_path, p)


def test_bucket_batches_cover_all_and_group_lengths():
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    batches = bucket_batches(lengths, 10, 20, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 6  # random batches of 10 would spread ~45
    again = bucket_batches(lengths, 10, 20, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(batches, again))


@pytest.mark.parametrize("name", ["bilstm_lasttoken", "bilstm_maxpool", "textcnn"])
def test_token_models_ignore_padding(params_for, name):
    """A text's logits do not depend on how much its batch is padded (pad id 0, whose embedding is not 0)."""
    arch = params_for(name, arch={"init_embeddings": "random", "dropout": 0.0}).model.arch
    torch.manual_seed(0)
    model = get(name).build(arch,
                            {"vocab_size": 50, "pad_id": 0, "n_labels": 3}, None).eval()
    with torch.no_grad():
        model.embedding.weight[0] = 1.0
    short = pad([[5, 6, 7]], 0)
    padded = pad([[5, 6, 7], [1] * 9], 0)
    with torch.no_grad():
        a = model(**short)[0]
        b = model(**{k: v[:1] for k, v in padded.items()})[0]
    torch.testing.assert_close(a, b)


def test_feature_layers_concatenate_top_hidden_states(tmp_path, params_for):
    p = params_for("transformer_featureextract", arch={"feature_layers": 3}, epochs=1)
    _fit(tmp_path, p)
    model, cfg, tok = load(tmp_path / "models")
    assert model.head[1].in_features == 3 * model.encoder.config.hidden_size
    batch = pad(tok(["so happy", "what a sad day"])["input_ids"], tok.pad_token_id)
    with torch.no_grad():
        feats = model.features(**batch)
        last = pool(model.encoder(**batch).last_hidden_state, batch["attention_mask"], "mean")
    np.testing.assert_allclose(feats[:, -last.shape[1]:], last, atol=1e-6)  # the top layer comes last
    too_many = params_for("transformer_featureextract", arch={"feature_layers": 9}, epochs=1)  # tiny: 2 layers
    with pytest.raises(ValueError, match="feature_layers is 9 but the encoder has 3 hidden states"):
        _fit(tmp_path / "b", too_many)


def test_tuned_monitor_is_logged_and_picks_the_epoch(tmp_path, params_for):
    p = params_for("bilstm_maxpool", epochs=3, monitor="dev_tuned_macro_f1")
    r = _fit(tmp_path, p)
    curve = (tmp_path / "dvclive/plots/metrics/dev_tuned_macro_f1.tsv").read_text().splitlines()[1:]
    values = [float(line.split("\t")[1]) for line in curve]
    assert len(values) == 3 and r["best_epoch"] == 1 + int(np.argmax(values))
    assert r["dev_tuned_macro_f1"] == pytest.approx(max(values))
    # thresholds tuned on the very data they score can only help
    assert r["dev_tuned_macro_f1"] >= r["dev_macro_f1"] - 1e-9


def test_bf16_train_step_runs_on_any_cpu(tmp_path, params_for):
    """bf16 autocast forced on (emulated on AVX2, native on AVX512-BF16/AMX): the path CI must cover everywhere."""
    r = _fit(tmp_path, params_for("transformer_finetune", epochs=1, precision="bf16"))
    m = json.loads((tmp_path / "train.json").read_text())
    assert np.isfinite(r["dev_loss"]) and m["precision"] == "bf16" and m["device"] == "cpu"
    model, cfg, _ = load(tmp_path / "models")
    assert cfg["train"]["precision"] == "bf16" and cfg["train"]["cpu_kind"]  # the whole record: with the model
    assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())


def test_checkpoint_of_other_code_or_precision_is_not_resumed(tmp_path, params_for, monkeypatch):
    import emotion_classifier.training.identity as T

    p = params_for("bilstm_maxpool", epochs=2)
    splits, names = load_prepared(p.data.prepared_dir)
    cpu, job = torch.device("cpu"), resolve(p)
    monkeypatch.setattr(T, "placement", lambda job: (cpu, "fp32"))
    base = T.run_id(job, splits, names)
    monkeypatch.setattr(T, "placement", lambda job: (cpu, "bf16"))
    assert base != T.run_id(job, splits, names)
    monkeypatch.setattr(T, "placement", lambda job: (cpu, "fp32"))
    monkeypatch.setattr(T, "code_version", lambda *starts: "edited")
    assert base != T.run_id(job, splits, names)
    monkeypatch.undo()
    assert _fit(tmp_path, p, stop_after_epochs=1) == {"stopped_after_epoch": 1}
    monkeypatch.setattr(T, "code_version", lambda *starts: "edited")  # the code changed while the run was down
    _fit(tmp_path, p)
    live = (tmp_path / "dvclive/plots/metrics/dev_loss.tsv").read_text().splitlines()
    assert len(live) == 1 + 2  # both epochs trained under the new code, none replayed


@pytest.mark.cuda
def test_cuda_training_resumes_exactly(tmp_path, params_for):
    """Dropout draws from the CUDA RNG: the checkpoint restores it, so a resumed run equals an uninterrupted one."""
    p = params_for("transformer_finetune", epochs=3, device="cuda", precision="fp32")
    full = _fit(tmp_path / "a", p)
    assert _fit(tmp_path / "b", p, stop_after_epochs=1) == {"stopped_after_epoch": 1}
    resumed = _fit(tmp_path / "b", p)
    assert full["device"].startswith("cuda") and full["gpu"]
    for k in ("dev_loss", "dev_macro_f1", "best_epoch"):
        assert resumed[k] == pytest.approx(full[k], abs=1e-5), k


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["bilstm_maxpool", "transformer_featureextract"])
def test_cuda_trains_each_kind_of_model(tmp_path, params_for, name):
    r = _fit(tmp_path, params_for(name, epochs=1, device="cuda", precision="auto"))
    assert r["device"].startswith("cuda") and np.isfinite(r["dev_loss"])


def test_epoch_monitor_tunes_thresholds_as_params_say():
    """The monitor's 'tuned' dev F1 follows thresholds.metric and evaluate.thresholds, as tune_thresholds and
    evaluate will; before, it always tuned per label (global fallback for micro F1) whatever they said."""
    from emotion_classifier import thresholds as T
    from emotion_classifier.training.loop import dev_metrics

    rng = np.random.default_rng(0)
    y = (rng.random((200, 4)) < [0.5, 0.2, 0.05, 0.02]).astype(np.float32)
    logits = (rng.normal(size=y.shape) + 1.5 * y - 1.0).astype(np.float32)
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    seen = set()
    for metric in ("micro_f1", "macro_f1"):
        for strategy in ("fixed", "global", "per_label"):
            got = dev_metrics(logits, y, torch.nn.BCEWithLogitsLoss(), "cpu", T.Policy(metric, 5, strategy))
            want = T.apply(probs, T.tune(y, probs, metric, 5)["strategies"][strategy])
            assert got["dev_tuned_macro_f1"] == pytest.approx(M.macro_f1(y, want))
            seen.add(round(got["dev_tuned_macro_f1"], 6))
    assert len(seen) >= 3  # the settings lead to different figures here, so ignoring one would fail
