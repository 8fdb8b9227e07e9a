"""The training loop, top to bottom: `fit` builds a `Run` (model, data, loss, optimizer), trains epoch by epoch
with optional bf16 autocast, scores dev after each and keeps the best (early stopping), checkpoints every epoch (a
killed run resumes), logs to DVCLive, and saves the best epoch's model directory.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import architectures, hardware, losses
from .. import metrics as M
from ..architectures.layers import decay_groups
from ..batching import FeatureData, TokenData, bucket_batches, call, predict_logits
from ..data import label_matrix
from ..encoder import load_tokenizer, tokenize
from ..fields import as_tree
from ..files import atomic_path
from ..hardware import autocast
from ..model_dir.model import build, n_params, save
from ..params import TrainJob
from ..thresholds import Policy, apply
from . import distributed
from .checkpoint import resume, save_checkpoint, save_state
from .distill import training_targets
from .features import default_feature_cache, encoder_features
from .identity import feature_key, run_id
from .reuse import cache_model


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def dev_metrics(logits: np.ndarray, y: np.ndarray, loss_fn, device, policy: Policy,
                shift: np.ndarray | None = None) -> dict[str, float]:
    """Dev loss, F1 at p > 0.5, and F1 with thresholds tuned on dev itself exactly as tune_thresholds and evaluate
    will (`policy`): the fair way to pick an epoch (an epoch whose probabilities are well ranked but shy of 0.5
    scores low at 0.5). The F1s are of `logits - shift`, what the saved model will give (see losses.Loss)."""
    with torch.no_grad():
        loss = float(loss_fn(torch.from_numpy(logits).to(device), torch.from_numpy(y).to(device)))
    if shift is not None:
        logits = logits - shift
    pred = logits > 0
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    tuned = apply(probs, policy.thresholds(y, probs))
    return {"dev_loss": loss, "dev_micro_f1": M.micro_f1(y, pred), "dev_macro_f1": M.macro_f1(y, pred),
            "dev_tuned_micro_f1": M.micro_f1(y, tuned), "dev_tuned_macro_f1": M.macro_f1(y, tuned)}


def improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "dev_loss" else value > best + 1e-6


# ---------------------------------------------------------------------------- the loop


class Run:
    """What one training run holds: the model, its data, the optimizer and where it computes."""

    def __init__(self, job: TrainJob, splits: dict, labels: list[str], feature_cache):
        self.job = job  # resolved: what this run trains with
        self.seed, self.train_params = job.seed, job.train  # the seed was set by the caller: the weights come from it
        self.feature_time = 0.0  # frozen-encoder features (feature-extract): computed, or reused from the cache
        self.name, self.arch = job.model.name, job.model.arch
        self.entry = architectures.get(self.name)
        if self.entry.check is not None:
            self.entry.check(self.arch, distributed.world_size())
        self.device = distributed.setup(job.train.device)
        self.precision = hardware.resolve_precision(job.train.precision, self.device, "train.precision")
        self.tokenizer = load_tokenizer(job.model.encoder)
        ids = {s: tokenize(self.tokenizer, splits[s]["text"], job.model.max_length) for s in ("train", "dev")}
        self.y = {s: label_matrix(splits[s]) for s in ("train", "dev")}
        self.targets = training_targets(job.teacher, job.train.distill_weight, splits["train"],
                                        self.y["train"])  # labels, or with a teacher's
        self.model, self.cfg = build(job.model, self.tokenizer, labels, self.device.type)
        self.model.to(self.device)
        if self.entry.head_on_features:  # the frozen encoder runs once; only the head trains, on its features
            self.data = {s: FeatureData(f) for s, f in self._features(ids, feature_cache).items()}
            self.trainable = self.model.head
        else:
            self.data = {s: TokenData(ids[s], self.tokenizer.pad_token_id) for s in ids}
            self.trainable = self.model
        loss = losses.get(job.train.loss)
        self.loss_fn = loss.build(job.loss, self.y["train"], self.device)
        self.logit_shift = loss.logit_shift(job.loss, self.y["train"]) if loss.logit_shift else None
        if self.logit_shift is not None:  # refuse now, not after the epochs
            architectures.output_layer(self.entry, self.model, len(labels))
        self.optimizer = make_optimizer(job.train.optimizer, self._param_groups(), job.train.lr, self.device)
        steps_per_epoch = math.ceil(len(self.y["train"]) / job.train.batch_size)  # global batches
        self.scheduler = make_scheduler(job.train.scheduler, self.optimizer, steps_per_epoch * job.train.epochs,
                                        job.train.warmup_ratio)
        self.forward = distributed.wrap(self.trainable, self.device)  # DDP averages gradients across ranks

    def _param_groups(self) -> list[dict]:
        """The architecture's own groups where it has them (e.g. per-layer rates), else every trainable weight at
        train.lr; no weight decay on biases and LayerNorm weights."""
        if self.entry.param_groups is not None:
            return self.entry.param_groups(self.model, self.train_params, self.arch)
        return decay_groups(self.trainable, self.train_params.lr, self.train_params.weight_decay)

    def _features(self, ids: dict, feature_cache) -> dict[str, torch.Tensor]:
        """Encoder features of each split: computed on rank 0 only (cached on disk), handed to every rank."""
        key = feature_key(self.job.model, self.entry, self.device, self.precision)
        cache = default_feature_cache() if feature_cache == "default" else feature_cache and Path(feature_cache)
        feats = None
        if distributed.is_writer():
            feats = {s: encoder_features(self.model, ids[s], self.tokenizer.pad_token_id,
                                         self.arch.feature_batch_size, self.device, self.precision, cache, key)
                     for s in ids}
            self.feature_time = sum(seconds for _, seconds in feats.values())
            feats = {s: f for s, (f, _) in feats.items()}
        return distributed.broadcast(feats)


def train_epoch(run: Run, epoch: int) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, seconds)."""
    train_params = run.train_params
    if run.entry.before_epoch is not None:
        run.entry.before_epoch(run.model, run.arch, epoch)
    run.trainable.train()
    rng = np.random.default_rng([run.seed, epoch])  # the epoch's order depends on nothing else: resumable
    batches = bucket_batches(run.data["train"].lengths, train_params.batch_size, train_params.bucket_chunk, rng)
    y_train = torch.from_numpy(run.targets)
    t0 = time.time()
    total, seen = 0.0, 0
    # off a terminal (nohup, CI, dvc queue logs) no bar frames: the epoch's one line says it all
    bar = tqdm(batches, desc=f"epoch {epoch}/{train_params.epochs}", unit="batch", leave=False,
               disable=None if distributed.is_writer() else True)
    for idx in bar:
        idx, weight = distributed.my_share(idx)  # the whole batch, weight 1, in one process
        batch = run.data["train"].batch(idx)
        if train_params.rdrop_alpha > 0:  # each example twice in one forward: two independent dropout masks
            batch = {k: torch.cat([v, v]) for k, v in batch.items()}
        with autocast(run.device, run.precision):
            logits = call(run.forward, batch, run.device)
        loss = batch_loss(run.loss_fn, logits.float(), y_train[torch.as_tensor(idx)].to(run.device),
                          train_params.rdrop_alpha)
        run.optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()
        if train_params.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.trainable.parameters(), train_params.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        if weight:
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
    per_rank = distributed.gather((total, seen))
    return sum(t for t, _ in per_rank) / sum(n for _, n in per_rank), time.time() - t0


def fit(job: TrainJob, splits: dict, labels: list[str], *, model_dir: str | Path, metrics_path: str | Path | None,
        live_dir: str | Path | None, checkpoint_root: str | Path, feature_cache: str | Path | None = "default",
        stop_after_epochs: int | None = None) -> dict:
    """Train `job.model` on splits['train'], select on splits['dev'], save to `model_dir` (and the compared figures
    to `metrics_path`, per-epoch logs to DVCLive's `live_dir`, where given: the stage's paths).

    `stop_after_epochs` ends the run early as if killed (tests of resume use it).
    """
    train_params, seed, policy = job.train, job.seed, job.policy
    set_seed(seed)  # the same initial weights on every rank
    torch.set_num_threads(distributed.threads_per_process())
    run = Run(job, splits, labels, feature_cache)
    if distributed.rank() > 0:
        torch.manual_seed(seed + 7919 * distributed.rank())  # each rank its own dropout masks
    if distributed.is_writer():
        print(f"{run.name}: {n_params(run.model):,} parameters ({n_params(run.trainable, True):,} "
              f"trained) on {len(run.y['train']):,} examples, up to {train_params.epochs} epochs, device "
              f"{run.device}, precision {run.precision}", flush=True)
    ckpt_dir = Path(checkpoint_root) / run_id(job, splits, labels)
    state = resume(ckpt_dir / "last.pt", run) or {"epoch": 0, "history": [], "best": None, "best_epoch": 0,
                                                  "bad_epochs": 0, "train_time": 0.0}
    writer = distributed.is_writer()
    live = _open_live(live_dir, state["history"], run_settings(job)) if writer else None
    t_run = time.time()
    monitor = train_params.monitor
    while state["epoch"] < train_params.epochs and state["bad_epochs"] <= train_params.patience:
        epoch = state["epoch"] + 1
        train_loss, epoch_time = train_epoch(run, epoch)
        if writer:  # dev is scored once, on rank 0; every rank then follows its decision
            rec = score_epoch(run, policy, epoch, train_loss, epoch_time)
            end_epoch(state, rec, monitor, ckpt_dir, run, live)
        state = distributed.broadcast(state)
        save_checkpoint(ckpt_dir / "last.pt", run, state)
        if stop_after_epochs is not None and epoch >= stop_after_epochs and epoch < train_params.epochs:
            return {"stopped_after_epoch": epoch}
        if state["bad_epochs"] > train_params.patience and writer:
            print(f"early stop: {monitor} has not improved for {state['bad_epochs']} epochs")
    result = finish(run, state, monitor, time.time() - t_run, model_dir, metrics_path, ckpt_dir) if writer else None
    if writer:
        cache_model(model_dir, result)  # a cache fault is a warning: model_dir holds the result
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # only now: the model is saved, and cached where it could be
    if live is not None:
        live.end()
    return distributed.broadcast(result)


def score_epoch(run: Run, policy: Policy, epoch: int, train_loss: float, epoch_time: float) -> dict:
    logits = predict_logits(run.trainable, run.data["dev"], run.train_params.batch_size * 4, run.device,
                            run.precision)
    return {"epoch": epoch, "train_loss": train_loss,
            **dev_metrics(logits, run.y["dev"], run.loss_fn, run.device, policy, run.logit_shift),
            "epoch_time_s": epoch_time, "train_examples_per_s": len(run.y["train"]) / epoch_time}


def end_epoch(state: dict, rec: dict, monitor: str, ckpt_dir: Path, run: Run, live) -> None:
    """Record the epoch, keep the best weights, log it."""
    state["history"].append(rec)
    state["train_time"] += rec["epoch_time_s"]
    state["epoch"] = rec["epoch"]
    if improved(monitor, rec[monitor], state["best"]):
        state.update(best=rec[monitor], best_epoch=rec["epoch"], bad_epochs=0)
        save_state(ckpt_dir / "best.pt", {"model": run.trainable.state_dict()})
    else:
        state["bad_epochs"] += 1
    _print_epoch(rec)
    if live is not None:
        _log(live, rec)


def finish(run: Run, state: dict, monitor: str, wall_time: float, model_dir, metrics_path, ckpt_dir: Path) -> dict:
    """Restore the best epoch, save the model directory and metrics/train.json (fit drops the checkpoint after).
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
        "params_total": n_params(run.model),
        **{k: hw[k] for k in ("device", "precision", "cpu_kind")}, **({"gpu": hw["gpu"]} if "gpu" in hw else {}),
        "world_size": distributed.world_size(),
    }
    # The run record travels with the model (a function of params, data, code and hardware: the same bytes when
    # the run is repeated); train.json keeps what experiments are compared on, timings included.
    record = {**{k: v for k, v in result.items() if k not in timing},
              **{k: best_rec[k] for k in ("dev_loss", "dev_micro_f1")}, "run_id": ckpt_dir.name,
              "seed": run.seed, "train_settings": as_tree(run.train_params),
              "loss_settings": as_tree(run.job.loss) or {},
              "params_trainable": n_params(run.trainable, trainable_only=True),
              **{k: v for k, v in hw.items() if k != "threads"}}
    save(run.model, run.cfg, run.tokenizer, model_dir, extra={"train": record})
    if metrics_path:
        with atomic_path(metrics_path) as tmp:
            tmp.write_text(json.dumps(summary(result), indent=2) + "\n")
    return {**record, **timing, "run_wall_time_s": round(wall_time, 2), "history": state["history"]}


SUMMARY = ("model", "best_epoch", "epochs_run", "monitor", "dev_macro_f1", "dev_tuned_micro_f1", "dev_tuned_macro_f1",
           "train_time_s", "feature_time_s", "epoch_time_s", "train_examples_per_s", "params_total", "device",
           "precision", "cpu_kind", "gpu", "world_size")


def summary(record: dict) -> dict:
    """metrics/train.json of a single model: what runs are compared on, from its run record and timings (a fresh run's,
    or the model cache's for a reused one)."""
    return {k: record[k] for k in SUMMARY if k in record}


def run_settings(job: TrainJob) -> dict:
    """What DVCLive logs as the run's params (dvclive/params.yaml): the settings it resolved, recipe included."""
    return live_settings(job.seed, job.model.name, as_tree(job.model.arch), as_tree(job.train), as_tree(job.loss))


def live_settings(seed: int, model: str, arch: dict, train: dict, loss: dict | None) -> dict:
    return {"seed": seed, "model": model, model: arch, "train": train, "loss": {train["loss"]: loss or {}}}


def _open_live(live_dir, history: list[dict], settings: dict):
    if live_dir is None:
        return None
    from dvclive import Live

    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    live.log_params(settings)
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


def replay_live(live_dir, history: list[dict], config: dict) -> None:
    """DVCLive's per-epoch logs of a run reused from the cache, as its training wrote them (`config`: the model's)."""
    record = config["train"]
    live = _open_live(live_dir, history, live_settings(record["seed"], config["name"], config["arch"],
                                                       record["train_settings"], record["loss_settings"]))
    if live is not None:
        live.end()
