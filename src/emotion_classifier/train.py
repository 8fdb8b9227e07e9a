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
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import architectures, distributed, hardware, models, paths, text, thresholds
from . import metrics as M
from .architectures._common import decay_groups
from .data import label_matrix
from .distill import teacher_hash, training_targets
from .hardware import autocast
from .io import atomic_path
from .params import resolve

# ---------------------------------------------------------------------------- set-up


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    for idx in tqdm(batches, desc="predict", unit="batch", disable=None if progress else True):  # None: not off a TTY
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


def cache_root() -> Path:
    """Outside the workspace, so queued experiments (each in its own temp copy) share it."""
    return Path(os.environ.get("EMOTION_CLASSIFIER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emotion-classifier"))


def default_feature_cache() -> Path:
    return cache_root() / "features"


def encoder_features(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int,
                     device, precision: str, cache_dir: Path | None, key: dict) -> torch.Tensor:
    """Pooled frozen-encoder features, cached on disk per (encoder, pooling, max_length, texts), and the seconds
    computing them took (a reused file's own: a run's train time counts the work it stands on)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = cache_dir / f"{_fingerprint(key, ids)}.safetensors" if cache_dir else None
    if path is not None and path.exists():
        with safe_open(str(path), "pt") as f:
            return f.get_tensor("features"), float((f.metadata() or {}).get("seconds", 0.0))
    t0 = time.time()
    data = TokenData(ids, pad_id)
    model.encoder.to(device)
    feats, order = [], []
    with torch.inference_mode():
        for idx in tqdm(sorted_batches(data.lengths, batch_size), desc="encoder features", unit="batch",
                        leave=False, disable=None):
            with autocast(device, precision):
                feats.append(model.features(**{k: v.to(device) for k, v in data.batch(idx).items()}).float().cpu())
            order.append(idx)
    out = torch.empty((len(ids), feats[0].shape[1]))
    out[torch.as_tensor(np.concatenate(order))] = torch.cat(feats)
    seconds = time.time() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"features": out.contiguous()}, str(tmp), metadata={"seconds": f"{seconds:.2f}"})
    return out, seconds


# ---------------------------------------------------------------------------- loss, optimizer, schedule


def label_counts(y_train: np.ndarray) -> np.ndarray:
    return np.maximum(y_train.sum(0), 1)  # a label without positives counts one, so nothing divides by zero


def positive_weights(train_params: dict, y_train: np.ndarray) -> np.ndarray:
    """weighted_bce's per-label weight of a positive: negatives per positive, capped at pos_weight_cap."""
    pos = label_counts(y_train)
    return np.minimum((len(y_train) - pos) / pos, train_params["pos_weight_cap"]).astype(np.float32)


def logit_shift(train_params: dict, y_train: np.ndarray) -> np.ndarray | None:
    """What the loss adds to each label's calibrated logit, to be taken out of the saved model. Weighted BCE's
    optimum is sigmoid(z) = w p / (w p + 1 - p), so z = logit(p) + log(w): probabilities run high, by up to
    10x in odds, which misleads a reader, a global threshold and an ensemble's fitted weights alike."""
    return np.log(positive_weights(train_params, y_train)) if train_params["loss"] == "weighted_bce" else None


def make_loss(train_params: dict, y_train: np.ndarray, device):
    kind = train_params["loss"]
    if kind == "bce":
        return nn.BCEWithLogitsLoss()
    if kind == "weighted_bce":
        weight = torch.from_numpy(positive_weights(train_params, y_train)).to(device)
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    if kind == "distribution_balanced":
        counts = torch.tensor(label_counts(y_train), dtype=torch.float32, device=device)
        return partial(distribution_balanced_loss, label_counts=counts,
                       n_train=len(y_train), neg_scale=train_params["db_neg_scale"],
                       bias_scale=train_params["db_bias_scale"])
    if kind == "asl":
        return partial(asymmetric_loss, gamma_pos=train_params["asl_gamma_pos"],
                       gamma_neg=train_params["asl_gamma_neg"], clip=train_params["asl_clip"])
    return partial(asymmetric_loss, gamma_pos=train_params["focal_gamma"], gamma_neg=train_params["focal_gamma"],
                   clip=0.0, focal=True)


def asymmetric_loss(logits, y, gamma_pos: float, gamma_neg: float, clip: float, focal: bool = False):
    """Asymmetric loss (Ridnik et al., 2021), mean over labels: easy negatives, which swamp a long-tailed
    multi-label set, are down-weighted by p^gamma_neg and dropped below `clip`; positives by (1-p)^gamma_pos.
    focal=True is focal loss (both gammas equal, no clip) written as before: BCE x (1 - p_t)^gamma."""
    p = torch.sigmoid(logits)
    if focal:
        ce = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (ce * (1 - (p * y + (1 - p) * (1 - y))) ** gamma_pos).mean()
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    pos = y * (1 - p) ** gamma_pos * nn.functional.logsigmoid(logits)
    neg = (1 - y) * p_neg ** gamma_neg * torch.log((1 - p_neg).clamp(min=1e-8))
    return -(pos + neg).mean()


def distribution_balanced_loss(logits, y, label_counts, n_train: int, neg_scale: float, bias_scale: float):
    """Distribution-balanced loss (Wu et al., 2020), without its focal term, as in the authors' code.
    Re-balanced weights: a label's share of an example's inverse label frequencies, smoothed into
    [0.1, 1.1], so an example's rare labels count more than its common ones. Negative-tolerant regularisation:
    negatives' logits are scaled by neg_scale (their loss divided by it) and every logit is shifted by
    bias_scale x the label's prior log-odds / neg_scale, so the many easy negatives stop pushing rare labels
    down. The shift is the loss's only: the model's logits stay uncalibrated by it, per label, which the
    per-label thresholds absorb."""
    inv = 1 / label_counts
    share = inv / (y * inv).sum(1, keepdim=True).clamp(min=1e-12)
    weight = torch.sigmoid(10 * (share - 0.2)) + 0.1  # the paper's mapping: alpha 0.1, beta 10, mu 0.2
    z = logits - torch.log(n_train / label_counts - 1).clamp(min=-30, max=30) * bias_scale / neg_scale
    pos = y * nn.functional.softplus(-z)
    neg = (1 - y) * nn.functional.softplus(neg_scale * z) / neg_scale
    return (weight * (pos + neg)).mean()


def batch_loss(loss_fn, logits: torch.Tensor, y: torch.Tensor, rdrop_alpha: float) -> torch.Tensor:
    """The loss; with R-Drop (Liang et al., 2021: the batch twice, under two dropout masks) half the paper's
    L1 + L2 + alpha/2 (KL(P1||P2) + KL(P2||P1)), per label, averaged over labels as the loss is."""
    if rdrop_alpha == 0:
        return loss_fn(logits, y)
    a, b = logits.chunk(2)
    sym_kl = ((torch.sigmoid(a) - torch.sigmoid(b)) * (a - b)).mean()  # both Bernoulli KLs summed, in closed form
    return (loss_fn(a, y) + loss_fn(b, y)) / 2 + rdrop_alpha * sym_kl / 4


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


# ---------------------------------------------------------------------------- evaluation


def dev_metrics(logits: np.ndarray, y: np.ndarray, loss_fn, device, metric: str, min_positives: int,
                strategy: str, shift: np.ndarray | None = None) -> dict[str, float]:
    """Dev loss, F1 at p > 0.5, and F1 with thresholds tuned on dev itself exactly as tune_thresholds
    and evaluate will (thresholds.metric, thresholds.min_positives, evaluate.thresholds): the fair way
    to pick an epoch (an epoch whose probabilities are well ranked but shy of 0.5 scores low at 0.5).
    The F1s are of `logits - shift`, what the saved model will give (see logit_shift)."""
    with torch.no_grad():
        loss = float(loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(y).to(device)))
    if shift is not None:
        logits = logits - shift
    pred = logits > 0
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    tuned = thresholds.apply(probs, thresholds.tune(y, probs, metric, min_positives)["strategies"][strategy])
    return {"dev_loss": loss, "dev_micro_f1": M.micro_f1(y, pred), "dev_macro_f1": M.macro_f1(y, pred),
            "dev_tuned_micro_f1": M.micro_f1(y, tuned), "dev_tuned_macro_f1": M.macro_f1(y, tuned)}


def improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "dev_loss" else value > best + 1e-6


# ---------------------------------------------------------------------------- checkpoints


def code_version() -> str:
    """A hash of the package's source, subpackages (the architectures) included: a checkpoint resumes, and a
    trained model is reused, only under the code that wrote it."""
    pkg = Path(__file__).parent
    return _fingerprint(*[(f.relative_to(pkg).as_posix(), f.read_text(encoding="utf-8"))
                          for f in sorted(pkg.rglob("*.py"))])


def run_id(params: dict, splits: dict, device: torch.device, precision: str) -> str:
    """A checkpoint belongs to exactly these params, data, code, device kind, precision and world size."""
    return _fingerprint(params["seed"], params["model"], params["train"], params["thresholds"],
                        params["evaluate"]["thresholds"], teacher_hash(params["train"]),
                        [splits[s]["id"].tolist() for s in ("train", "dev")], code_version(), device.type, precision,
                        distributed.world_size())


def planned_run_id(params: dict, splits: dict) -> str:
    """The run id `fit` will give these params on this machine, before anything is built."""
    params = resolve(params)
    device = hardware.resolve_device(params["train"]["device"], "train.device")
    precision = hardware.resolve_precision(params["train"]["precision"], device, "train.precision")
    return run_id(params, splits, device, precision)


def trained_already(params: dict, splits: dict, model_dir: str | Path) -> bool:
    """model_dir holds what `fit` would train from these exact params, data and code (an ensemble member
    finished before an interruption)."""
    try:
        cfg = models.read_config(model_dir)
    except models.ModelDirError:
        return False
    return cfg.get("train", {}).get("run_id") == planned_run_id(params, splits)


def model_cache() -> Path:
    """Finished models by run id, outside the workspace: an ensemble's member that an experiment of the same
    architecture, recipe, seed, data, code and machine kind trained already is copied, not trained again."""
    return cache_root() / "models"


def cache_model(model_dir: str | Path, record: dict) -> None:
    """Copy a finished model directory into the model cache (whole or not at all), with its timings."""
    target = model_cache() / record["run_id"]
    if target.exists():
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp, ignore=shutil.ignore_patterns("members", "thresholds.json"))
    run_log = {**{k: v for k, v in record.items() if k.endswith(("_s", "_per_s"))}, "history": record["history"]}
    (tmp / TIMING).write_text(json.dumps(run_log) + "\n")
    try:
        tmp.rename(target)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)


TIMING = "run.json"  # in a cache entry only: how long its training took (a reuse counts it), its epochs' records


def cached_timing(run: str) -> dict:
    """The cached run's timings and `history` (per-epoch records), or {} when not cached."""
    path = model_cache() / run / TIMING
    return json.loads(path.read_text()) if path.exists() else {}


def replay_live(live_dir, history: list[dict]) -> None:
    """DVCLive's per-epoch logs of a run reused from the cache, as its training wrote them."""
    live = _open_live(live_dir, history)
    if live is not None:
        live.end()


def cached_model(params: dict, splits: dict) -> Path | None:
    path = model_cache() / planned_run_id(params, splits)
    return path if (path / "config.json").exists() else None


def _save_state(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_checkpoint(path: Path, run, state: dict) -> None:
    rngs = distributed.gather(hardware.rng_state(run.device))  # every rank's dropout stream (a collective)
    if distributed.is_writer():
        _save_state(path, {"model": run.trainable.state_dict(), "optimizer": run.optimizer.state_dict(),
                           "scheduler": run.scheduler.state_dict(), "rng": rngs, "state": json.dumps(state)})


def resume(path: Path, run) -> dict | None:
    """The loop state after the last finished epoch, with model, optimizer, schedule and RNGs restored;
    None when there is no checkpoint. Rank 0 reads it and hands it to every rank, on any machine."""
    ck = torch.load(path, map_location="cpu", weights_only=True) if distributed.is_writer() and path.exists() else None
    ck = distributed.broadcast(ck)
    if ck is None:
        return None
    run.trainable.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    hardware.set_rng_state(ck["rng"][distributed.rank()])
    state = json.loads(ck["state"])
    if distributed.is_writer():
        print(f"resuming from {path} after epoch {state['epoch']}")
    return state


# ---------------------------------------------------------------------------- the loop


class Run:
    """What one training run holds: the model, its data, the optimizer and where it computes."""

    def __init__(self, params: dict, splits: dict, labels: list[str], feature_cache):
        model_params, train_params = params["model"], params["train"]
        self.train_params = train_params  # resolved: what this run trains with
        self.feature_time = 0.0  # frozen-encoder features (feature-extract): computed, or reused from the cache
        self.name = model_params["name"]
        self.entry = architectures.get(self.name)
        self.arch = model_params[self.name]
        if self.entry.check is not None:
            self.entry.check(self.arch, distributed.world_size())
        self.device = distributed.setup(train_params["device"])
        self.precision = hardware.resolve_precision(train_params["precision"], self.device, "train.precision")
        self.tokenizer = text.load_tokenizer(model_params["encoder"])
        ids = {s: text.tokenize(self.tokenizer, splits[s]["text"], model_params["max_length"])
               for s in ("train", "dev")}
        self.y = {s: label_matrix(splits[s]) for s in ("train", "dev")}
        self.targets = training_targets(train_params, splits["train"], self.y["train"])  # labels, or with a teacher's
        self.model, self.cfg = models.build(self.name, model_params, self.tokenizer, labels, self.device.type)
        self.model.to(self.device)
        if self.entry.head_on_features:  # the frozen encoder runs once; only the head trains, on its features
            self.data = {s: FeatureData(f) for s, f in self._features(ids, model_params, feature_cache).items()}
            self.trainable = self.model.head
        else:
            self.data = {s: TokenData(ids[s], self.tokenizer.pad_token_id) for s in ids}
            self.trainable = self.model
        self.loss_fn = make_loss(train_params, self.y["train"], self.device)
        self.logit_shift = logit_shift(train_params, self.y["train"])
        if self.logit_shift is not None:  # refuse now, not after the epochs
            architectures.output_layer(self.entry, self.model, len(labels))
        self.optimizer = make_optimizer(train_params["optimizer"],
                                        self._param_groups(train_params),
                                        train_params["lr"], self.device)
        steps_per_epoch = math.ceil(len(self.y["train"]) / train_params["batch_size"])  # global batches
        self.scheduler = make_scheduler(train_params["scheduler"], self.optimizer,
                                        steps_per_epoch * train_params["epochs"], train_params["warmup_ratio"])
        self.forward = distributed.wrap(self.trainable, self.device)  # DDP averages gradients across ranks

    def _param_groups(self, train_params: dict) -> list[dict]:
        """The architecture's own groups where it has them (e.g. per-layer rates), else every trainable weight at
        train.lr; no weight decay on biases and LayerNorm weights."""
        if self.entry.param_groups is not None:
            return self.entry.param_groups(self.model, train_params, self.arch)
        return decay_groups(self.trainable, train_params["lr"], train_params["weight_decay"])

    def _features(self, ids: dict, model_params: dict, feature_cache) -> dict[str, torch.Tensor]:
        """Encoder features of each split: computed on rank 0 only (cached on disk), handed to every rank."""
        key = {"encoder": text.resolve_encoder(model_params["encoder"]), "max_length": model_params["max_length"],
               "mask_words": model_params["mask_words"], "precision": self.precision, "device": self.device.type,
               **{k: self.arch[k] for k in self.entry.feature_params}}
        cache = default_feature_cache() if feature_cache == "default" else feature_cache and Path(feature_cache)
        feats = None
        if distributed.is_writer():
            feats = {s: encoder_features(self.model, ids[s], self.tokenizer.pad_token_id,
                                         self.arch["feature_batch_size"], self.device, self.precision, cache, key)
                     for s in ids}
            self.feature_time = sum(seconds for _, seconds in feats.values())
            feats = {s: f for s, (f, _) in feats.items()}
        return distributed.broadcast(feats)


def train_epoch(run: Run, train_params: dict, seed: int, epoch: int) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, seconds)."""
    if run.entry.before_epoch is not None:
        run.entry.before_epoch(run.model, run.arch, epoch)
    run.trainable.train()
    rng = np.random.default_rng([seed, epoch])  # the epoch's order depends on nothing else: resumable
    batches = bucket_batches(run.data["train"].lengths, train_params["batch_size"], train_params["bucket_chunk"], rng)
    y_train = torch.from_numpy(run.targets)
    t0 = time.time()
    total, seen = 0.0, 0
    # off a terminal (nohup, CI, dvc queue logs) no bar frames: the epoch's one line says it all
    bar = tqdm(batches, desc=f"epoch {epoch}/{train_params['epochs']}", unit="batch", leave=False,
               disable=None if distributed.is_writer() else True)
    for idx in bar:
        idx, weight = distributed.my_share(idx)  # the whole batch, weight 1, in one process
        batch = run.data["train"].batch(idx)
        if train_params["rdrop_alpha"] > 0:  # each example twice in one forward: two independent dropout masks
            batch = {k: torch.cat([v, v]) for k, v in batch.items()}
        with autocast(run.device, run.precision):
            logits = _call(run.forward, batch, run.device)
        loss = batch_loss(run.loss_fn, logits.float(), y_train[torch.as_tensor(idx)].to(run.device),
                          train_params["rdrop_alpha"])
        run.optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        if train_params["grad_clip"] > 0:
            nn.utils.clip_grad_norm_(run.trainable.parameters(), train_params["grad_clip"])
        run.optimizer.step()
        run.scheduler.step()
        if weight:
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
    per_rank = distributed.gather((total, seen))
    return sum(t for t, _ in per_rank) / sum(n for _, n in per_rank), time.time() - t0


def fit(params: dict, splits: dict, labels: list[str], model_dir: str | Path = paths.MODEL_DIR,
        metrics_path: str | Path = paths.TRAIN_METRICS, live_dir: str | Path | None = paths.LIVE_DIR,
        checkpoint_root: str | Path = paths.CHECKPOINTS, feature_cache: str | Path | None = "default",
        stop_after_epochs: int | None = None) -> dict:
    """Train `params['model']['name']` on splits['train'], select on splits['dev'], save to `model_dir`.

    `stop_after_epochs` ends the run early as if killed (tests of resume use it).
    """
    params = resolve(params)  # the architecture's recipe fills what params.yaml leaves null
    train_params, seed = params["train"], params["seed"]
    set_seed(seed)  # the same initial weights on every rank
    torch.set_num_threads(distributed.threads_per_process())
    run = Run(params, splits, labels, feature_cache)
    if distributed.rank() > 0:
        torch.manual_seed(seed + 7919 * distributed.rank())  # each rank its own dropout masks
    if distributed.is_writer():
        print(f"{run.name}: {models.n_params(run.model):,} parameters ({models.n_params(run.trainable, True):,} "
              f"trained) on {len(run.y['train']):,} examples, up to {train_params['epochs']} epochs, device "
              f"{run.device}, precision {run.precision}", flush=True)
    ckpt_dir = Path(checkpoint_root) / run_id(params, splits, run.device, run.precision)
    state = resume(ckpt_dir / "last.pt", run) or {"epoch": 0, "history": [], "best": None, "best_epoch": 0,
                                                  "bad_epochs": 0, "train_time": 0.0}
    writer = distributed.is_writer()
    live = _open_live(live_dir, state["history"]) if writer else None
    t_run = time.time()
    monitor = train_params["monitor"]
    while state["epoch"] < train_params["epochs"] and state["bad_epochs"] <= train_params["patience"]:
        epoch = state["epoch"] + 1
        train_loss, epoch_time = train_epoch(run, train_params, seed, epoch)
        if writer:  # dev is scored once, on rank 0; every rank then follows its decision
            rec = score_epoch(run, params, epoch, train_loss, epoch_time)
            end_epoch(state, rec, monitor, ckpt_dir, run, live)
        state = distributed.broadcast(state)
        save_checkpoint(ckpt_dir / "last.pt", run, state)
        if stop_after_epochs is not None and epoch >= stop_after_epochs and epoch < train_params["epochs"]:
            return {"stopped_after_epoch": epoch}
        if state["bad_epochs"] > train_params["patience"] and writer:
            print(f"early stop: {monitor} has not improved for {state['bad_epochs']} epochs")
    result = finish(run, state, monitor, time.time() - t_run, model_dir, metrics_path, ckpt_dir) if writer else None
    if writer:
        cache_model(model_dir, result)
    if live is not None:
        live.end()
    return distributed.broadcast(result)


def score_epoch(run: Run, params: dict, epoch: int, train_loss: float, epoch_time: float) -> dict:
    logits = predict_logits(run.trainable, run.data["dev"], params["train"]["batch_size"] * 4, run.device,
                            run.precision)
    thr_params = params["thresholds"]
    return {"epoch": epoch, "train_loss": train_loss,
            **dev_metrics(logits, run.y["dev"], run.loss_fn, run.device, thr_params["metric"],
                          thr_params["min_positives"], params["evaluate"]["thresholds"], run.logit_shift),
            "epoch_time_s": epoch_time, "train_examples_per_s": len(run.y["train"]) / epoch_time}


def end_epoch(state: dict, rec: dict, monitor: str, ckpt_dir: Path, run: Run, live) -> None:
    """Record the epoch, keep the best weights, log it."""
    state["history"].append(rec)
    state["train_time"] += rec["epoch_time_s"]
    state["epoch"] = rec["epoch"]
    if improved(monitor, rec[monitor], state["best"]):
        state.update(best=rec[monitor], best_epoch=rec["epoch"], bad_epochs=0)
        _save_state(ckpt_dir / "best.pt", {"model": run.trainable.state_dict()})
    else:
        state["bad_epochs"] += 1
    _print_epoch(rec)
    if live is not None:
        _log(live, rec)


def finish(run: Run, state: dict, monitor: str, wall_time: float, model_dir, metrics_path, ckpt_dir: Path) -> dict:
    """Restore the best epoch, save the model directory and metrics/train.json, drop the checkpoint.
    Returns the whole run record (config.json's `train`); train.json keeps the figures runs are compared on."""
    best = torch.load(ckpt_dir / "best.pt", map_location="cpu", weights_only=True)
    run.trainable.load_state_dict(best["model"])
    run.model.to("cpu")
    if run.logit_shift is not None:
        with torch.no_grad():
            architectures.output_layer(run.entry, run.model, len(run.logit_shift)).bias -= torch.from_numpy(
                run.logit_shift)
    best_rec = state["history"][state["best_epoch"] - 1]
    epoch_times = [r["epoch_time_s"] for r in state["history"]]
    timing = {  # wall-clock figures differ run to run: metrics/ and the model cache only, never the model directory
        "train_time_s": round(state["train_time"] + run.feature_time, 2),  # epochs and the features they train on
        "feature_time_s": round(run.feature_time, 2),
        "epoch_time_s": round(float(np.mean(epoch_times)), 2),
        "train_examples_per_s": round(len(run.y["train"]) * len(epoch_times) / sum(epoch_times), 1),
    }
    hw = hardware.describe(run.device, run.precision)
    result = {
        "model": run.name,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "monitor": monitor,
        **{k: best_rec[k] for k in ("dev_macro_f1", "dev_tuned_micro_f1", "dev_tuned_macro_f1")},
        **timing,
        "params_total": models.n_params(run.model),
        **{k: hw[k] for k in ("device", "precision")},
        "world_size": distributed.world_size(),
    }
    # The run record travels with the model (a function of params, data, code and hardware: the same bytes when
    # the run is repeated); train.json keeps what experiments are compared on, timings included.
    record = {**{k: v for k, v in result.items() if k not in timing},
              **{k: best_rec[k] for k in ("dev_loss", "dev_micro_f1")}, "run_id": ckpt_dir.name,
              "train_settings": run.train_params,
              "params_trainable": models.n_params(run.trainable, trainable_only=True),
              **{k: v for k, v in hw.items() if k != "threads"}}
    models.save(run.model, run.cfg, run.tokenizer, model_dir, extra={"train": record})
    if metrics_path:
        with atomic_path(metrics_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: the model directory is the result
    return {**record, **timing, "run_wall_time_s": round(wall_time, 2), "history": state["history"]}


def _open_live(live_dir, history: list[dict]):
    if live_dir is None:
        return None
    from dvclive import Live

    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    for rec in history:  # replay finished epochs: DVC cleared the old dvclive/ output
        _log(live, rec)
    return live


def _print_epoch(rec: dict) -> None:
    print(f"epoch {rec['epoch']}: train_loss {rec['train_loss']:.4f} dev_loss {rec['dev_loss']:.4f} "
          f"dev_micro_f1 {rec['dev_micro_f1']:.4f} dev_macro_f1 {rec['dev_macro_f1']:.4f} "
          f"tuned {rec['dev_tuned_micro_f1']:.4f}/{rec['dev_tuned_macro_f1']:.4f} "
          f"({rec['epoch_time_s']:.0f}s, {rec['train_examples_per_s']:.0f} ex/s)")


def _log(live, rec: dict) -> None:
    for k in ("train_loss", "dev_loss", "dev_micro_f1", "dev_macro_f1", "dev_tuned_micro_f1", "dev_tuned_macro_f1"):
        live.log_metric(k, rec[k])
    live.next_step()
