"""The training loop: length-bucketed batches, optional bf16 autocast, early stopping on dev,
a checkpoint after every epoch (so a killed run resumes), DVCLive logging per epoch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import metrics as M
from . import models, text, thresholds
from .data import label_matrix
from .io import atomic_path

# ---------------------------------------------------------------------------- set-up


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is visible; use device: auto or cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    # Without AVX512-BF16 or AMX, bf16 matmuls are emulated: measured ~20x slower than fp32 on an AVX2 CPU.
    cpu = getattr(torch, "cpu", None)
    return bool(cpu and (getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                         or getattr(cpu, "_is_amx_tile_supported", lambda: False)()))


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# ---------------------------------------------------------------------------- batches


def bucket_batches(lengths, batch_size: int, chunk_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length within chunks of `chunk_batches` batches, cut batches, shuffle the batches.
    Batches hold similar lengths (little padding) yet the order stays random."""
    idx = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    chunk = batch_size * chunk_batches
    batches = []
    for start in range(0, len(idx), chunk):
        part = idx[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class TokenData:
    """Token id lists -> padded batches for a model taking (input_ids, attention_mask)."""

    def __init__(self, ids: list[list[int]], pad_id: int):
        self.ids, self.pad_id = ids, pad_id
        self.lengths = [len(s) for s in ids]

    def batch(self, idx) -> dict[str, torch.Tensor]:
        return pad([self.ids[i] for i in idx], self.pad_id)


class FeatureData:
    """Precomputed encoder features -> batches for a head taking one tensor."""

    def __init__(self, feats: torch.Tensor):
        self.feats = feats
        self.lengths = [1] * len(feats)

    def batch(self, idx) -> dict[str, torch.Tensor]:
        return {"input": self.feats[torch.as_tensor(idx)]}


def _call(module: nn.Module, batch: dict, device):
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return module(batch["input"]) if "input" in batch else module(**batch)


@torch.inference_mode()
def predict_logits(module: nn.Module, data, batch_size: int, device, precision: str,
                   progress: bool = False) -> np.ndarray:
    """Logits in the original order, computed over length-sorted batches."""
    module.eval()
    out = None
    batches = sorted_batches(data.lengths, batch_size)
    for idx in tqdm(batches, desc="predict", unit="batch", disable=not progress):
        with autocast(device, precision):
            logits = _call(module, data.batch(idx), device).float().cpu().numpy()
        if out is None:
            out = np.empty((len(data.lengths), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out


# ---------------------------------------------------------------------------- features (feature-extract)


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def default_feature_cache() -> Path:
    """Outside the workspace, so queued experiments (each in its own temp copy) share it."""
    root = os.environ.get("EMOTION_CLASSIFIER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emotion-classifier")
    return Path(root) / "features"


def encoder_features(model: models.FeatureExtract, ids: list[list[int]], pad_id: int, batch_size: int,
                     device, precision: str, cache_dir: Path | None, key: dict) -> torch.Tensor:
    """Pooled frozen-encoder features, cached on disk per (encoder, pooling, max_length, texts)."""
    from safetensors.torch import load_file, save_file

    path = cache_dir / f"{_fingerprint(key, ids)}.safetensors" if cache_dir else None
    if path is not None and path.exists():
        return load_file(str(path))["features"]
    data = TokenData(ids, pad_id)
    model.encoder.to(device)
    feats, order = [], []
    with torch.inference_mode():
        for idx in tqdm(sorted_batches(data.lengths, batch_size), desc="encoder features", unit="batch",
                        leave=False):
            with autocast(device, precision):
                feats.append(model.features(**{k: v.to(device) for k, v in data.batch(idx).items()}).float().cpu())
            order.append(idx)
    out = torch.empty((len(ids), feats[0].shape[1]))
    out[torch.as_tensor(np.concatenate(order))] = torch.cat(feats)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"features": out.contiguous()}, str(tmp))
    return out


# ---------------------------------------------------------------------------- loss, optimizer, schedule


def make_loss(kind: str, y_train: np.ndarray, focal_gamma: float, pos_weight_cap: float, device):
    if kind == "bce":
        return nn.BCEWithLogitsLoss()
    if kind == "weighted_bce":
        pos = y_train.sum(0)
        weight = np.minimum((len(y_train) - pos) / np.maximum(pos, 1), pos_weight_cap)
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float32, device=device))

    def focal(logits, y):
        ce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * y + (1 - p) * (1 - y)
        return (ce * (1 - p_t) ** focal_gamma).mean()

    return focal


def param_groups(model: nn.Module, name: str, tp: dict, arch: dict) -> list[dict]:
    """Head/BiLSTM at train.lr; for fine-tuning the encoder at encoder_lr, decayed layer by layer
    from the top when layer_lr_decay < 1. No weight decay on biases and LayerNorm weights."""
    def groups_for(module, lr):
        decay = [p for n, p in module.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
        no_decay = [p for n, p in module.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
        return [g for g in ({"params": decay, "lr": lr, "weight_decay": tp["weight_decay"]},
                            {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]

    if name == "transformer_featureextract":
        return groups_for(model.head, tp["lr"])
    if name != "transformer_finetune":
        return groups_for(model, tp["lr"])
    enc = model.encoder
    groups = groups_for(model.classifier, tp["lr"])
    decay = arch["layer_lr_decay"]
    if decay == 1.0:
        return groups + groups_for(enc, arch["encoder_lr"])
    layers = models.encoder_layers(enc)
    in_layers = {id(p) for layer in layers for p in layer.parameters()}
    for depth, layer in enumerate(reversed(layers)):
        groups += groups_for(layer, arch["encoder_lr"] * decay ** depth)
    rest = nn.ParameterList([p for p in enc.parameters() if id(p) not in in_layers])  # embeddings, pooler
    return groups + groups_for(rest, arch["encoder_lr"] * decay ** len(layers))


def make_optimizer(kind: str, groups: list[dict], lr: float, device):
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    try:
        return cls(groups, lr=lr, fused=True)  # one fused kernel for all parameters
    except (RuntimeError, TypeError):
        return cls(groups, lr=lr)


def make_scheduler(kind: str, opt, total_steps: int, warmup_ratio: float):
    warmup = int(total_steps * warmup_ratio) if kind != "none" else 0

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        if kind == "none":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return max(0.0, 1 - progress) if kind == "linear" else 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def set_unfrozen(model: nn.Module, n_top: int) -> None:
    """Gradual unfreezing: train the top `n_top` encoder layers (and embeddings once all are)."""
    layers = models.encoder_layers(model.encoder)
    model.encoder.requires_grad_(n_top >= len(layers))
    for layer in layers[len(layers) - min(n_top, len(layers)):]:
        layer.requires_grad_(True)


# ---------------------------------------------------------------------------- evaluation


def dev_metrics(logits: np.ndarray, y: np.ndarray, loss_fn, device, min_positives: int) -> dict[str, float]:
    """Dev loss, F1 at p > 0.5, and F1 with per-label thresholds tuned on dev itself: the last is what
    tune_thresholds + evaluate will do with this model, so it is the fair way to pick an epoch (an
    epoch whose probabilities are well ranked but shy of 0.5 scores low at a fixed 0.5)."""
    with torch.no_grad():
        loss = float(loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(y).to(device)))
    pred = logits > 0
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    tuned = thresholds.apply(probs, thresholds.tune(y, probs, min_positives=min_positives)["strategies"]["per_label"])
    return {"dev_loss": loss, "dev_micro_f1": M.micro_f1(y, pred), "dev_macro_f1": M.macro_f1(y, pred),
            "dev_tuned_micro_f1": M.micro_f1(y, tuned), "dev_tuned_macro_f1": M.macro_f1(y, tuned)}


def improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "dev_loss" else value > best + 1e-6


# ---------------------------------------------------------------------------- the loop


def fit(params: dict, splits: dict, labels: list[str], model_dir: str | Path = "models",
        metrics_path: str | Path = "metrics/train.json", live_dir: str | Path | None = "dvclive",
        checkpoint_root: str | Path = ".checkpoints", feature_cache: str | Path | None = "default",
        stop_after_epochs: int | None = None) -> dict:
    """Train `params['model']['name']` on splits['train'], select on splits['dev'], save to `model_dir`.

    `stop_after_epochs` ends the run early as if killed (tests of resume use it).
    """
    mp, tp = params["model"], params["train"]
    name = mp["name"]
    models.check_name(name)
    arch = mp[name]
    seed = params["seed"]
    set_seed(seed)
    torch.set_num_threads(n_cores())
    device = resolve_device(tp["device"])
    precision = resolve_precision(tp["precision"], device)
    if precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        print("warning: this CPU has no native bf16 (AVX512-BF16/AMX); bf16 autocast will be much slower than fp32")

    tokenizer = text.load_tokenizer(mp["encoder"])
    ids = {s: text.tokenize(tokenizer, splits[s]["text"], mp["max_length"]) for s in ("train", "dev")}
    y = {s: label_matrix(splits[s]) for s in ("train", "dev")}
    model, cfg = models.build(name, mp, tokenizer, labels, device.type)
    model.to(device)

    if name == "transformer_featureextract":
        key = {"encoder": text.resolve_encoder(mp["encoder"]), "pooling": arch["pooling"],
               "max_length": mp["max_length"]}
        if arch["feature_layers"] > 1:  # (absent from the key at 1, so features cached before stay valid)
            key["feature_layers"] = arch["feature_layers"]
        cache = default_feature_cache() if feature_cache == "default" else feature_cache and Path(feature_cache)
        data = {s: FeatureData(encoder_features(model, ids[s], tokenizer.pad_token_id, arch["feature_batch_size"],
                                                device, precision, cache, key)) for s in ids}
        trainable = model.head
    else:
        data = {s: TokenData(ids[s], tokenizer.pad_token_id) for s in ids}
        trainable = model

    loss_fn = make_loss(tp["loss"], y["train"], tp["focal_gamma"], tp["pos_weight_cap"], device)
    optimizer = make_optimizer(tp["optimizer"], param_groups(model, name, tp, arch), tp["lr"], device)
    steps_per_epoch = math.ceil(len(y["train"]) / tp["batch_size"])
    scheduler = make_scheduler(tp["scheduler"], optimizer, steps_per_epoch * tp["epochs"], tp["warmup_ratio"])

    # A checkpoint belongs to exactly these params and data; anything else starts afresh.
    run_id = _fingerprint(params["seed"], mp, tp, [splits[s]["id"].tolist() for s in ("train", "dev")])
    ckpt_dir = Path(checkpoint_root) / run_id
    state = {"epoch": 0, "history": [], "best": None, "best_epoch": 0, "bad_epochs": 0, "train_time": 0.0}
    if (ckpt_dir / "last.pt").exists():
        ck = torch.load(ckpt_dir / "last.pt", map_location="cpu", weights_only=True)
        trainable.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        state = json.loads(ck["state"])
        print(f"resuming from {ckpt_dir}/last.pt after epoch {state['epoch']}")

    live = None
    if live_dir is not None:
        from dvclive import Live

        live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        for rec in state["history"]:  # replay finished epochs: DVC cleared the old dvclive/ output
            _log(live, rec)

    t_run = time.time()
    monitor = tp["monitor"]
    n_train = len(y["train"])
    y_train_t = torch.from_numpy(y["train"])
    while state["epoch"] < tp["epochs"] and state["bad_epochs"] <= tp["patience"]:
        epoch = state["epoch"] + 1
        if name == "transformer_finetune" and arch["unfreeze_layers_per_epoch"] > 0:
            set_unfrozen(model, arch["unfreeze_layers_per_epoch"] * epoch)
        trainable.train()
        rng = np.random.default_rng([seed, epoch])  # the epoch's order depends on nothing else: resumable
        batches = bucket_batches(data["train"].lengths, tp["batch_size"], tp["bucket_chunk"], rng)
        t0 = time.time()
        total, seen = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{tp['epochs']}", unit="batch", leave=False)
        for idx in bar:
            with autocast(device, precision):
                logits = _call(trainable, data["train"].batch(idx), device)
            loss = loss_fn(logits.float(), y_train_t[torch.as_tensor(idx)].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tp["grad_clip"] > 0:
                nn.utils.clip_grad_norm_(trainable.parameters(), tp["grad_clip"])
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        epoch_time = time.time() - t0
        logits = predict_logits(trainable, data["dev"], tp["batch_size"] * 4, device, precision)
        rec = {"epoch": epoch, "train_loss": total / seen, **dev_metrics(logits, y["dev"], loss_fn, device,
                                                                          params["thresholds"]["min_positives"]),
               "epoch_time_s": epoch_time, "train_examples_per_s": n_train / epoch_time}
        state["history"].append(rec)
        state["train_time"] += epoch_time
        state["epoch"] = epoch
        if improved(monitor, rec[monitor], state["best"]):
            state.update(best=rec[monitor], best_epoch=epoch, bad_epochs=0)
            _save_state(ckpt_dir / "best.pt", {"model": trainable.state_dict()})
        else:
            state["bad_epochs"] += 1
        _save_state(ckpt_dir / "last.pt", {
            "model": trainable.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "state": json.dumps(state)})
        print(f"epoch {epoch}: train_loss {rec['train_loss']:.4f} dev_loss {rec['dev_loss']:.4f} "
              f"dev_micro_f1 {rec['dev_micro_f1']:.4f} dev_macro_f1 {rec['dev_macro_f1']:.4f} "
              f"tuned {rec['dev_tuned_micro_f1']:.4f}/{rec['dev_tuned_macro_f1']:.4f} "
              f"({epoch_time:.0f}s, {rec['train_examples_per_s']:.0f} ex/s)")
        if live is not None:
            _log(live, rec)
        if stop_after_epochs is not None and epoch >= stop_after_epochs and epoch < tp["epochs"]:
            return {"stopped_after_epoch": epoch}
        if state["bad_epochs"] > tp["patience"]:
            print(f"early stop: {monitor} has not improved for {state['bad_epochs']} epochs")

    best = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=True)
    trainable.load_state_dict(best["model"])
    model.to("cpu")
    best_rec = state["history"][state["best_epoch"] - 1]
    epoch_times = [r["epoch_time_s"] for r in state["history"]]
    result = {
        "model": name,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "monitor": monitor,
        **{k: best_rec[k] for k in ("dev_loss", "dev_micro_f1", "dev_macro_f1", "dev_tuned_micro_f1",
                                    "dev_tuned_macro_f1")},
        "train_time_s": round(state["train_time"], 2),
        "epoch_time_s": round(float(np.mean(epoch_times)), 2),
        "train_examples_per_s": round(n_train * len(epoch_times) / sum(epoch_times), 1),
        "params_total": models.n_params(model),
        "params_trainable": models.n_params(trainable, trainable_only=True),
        "device": device.type,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "run_wall_time_s": round(time.time() - t_run, 2),
    }
    models.save(model, cfg, tokenizer, model_dir, extra={"train": {k: result[k] for k in
                                                                   ("best_epoch", "dev_macro_f1", "dev_micro_f1")}})
    if metrics_path:
        with atomic_path(metrics_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    if live is not None:
        live.end()
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: the model directory is the result
    return result


def _save_state(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _log(live, rec: dict) -> None:
    for k in ("train_loss", "dev_loss", "dev_micro_f1", "dev_macro_f1", "dev_tuned_micro_f1", "dev_tuned_macro_f1"):
        live.log_metric(k, rec[k])
    live.next_step()
