"""Stage train: model.name alone, with its recipe; or, for model.name ensemble, each member with its own, the first
into models/ and the rest into models/members/<i>/ (kept by DVC across runs: persist)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import data
from ..files import write_json
from ..model_dir import member_dir
from ..model_dir.model import read_config
from ..params import ENSEMBLE, TRAIN_KEYS, Params, TrainJob, dump, member_params, recipe_sources, resolve
from ..paths import CHECKPOINTS, LIVE_DIR, MEMBERS_DIR, MODEL_DIR, RUN_ENVIRONMENT, TEACHERS_DIR, TRAIN_METRICS
from ..training import distributed
from ..training.identity import environment, run_id
from ..training.loop import fit, replay_live, summary
from ..training.reuse import cached_model, cached_timing, copy_model, reuse_problem

MEMBERS_NOTE = "README.txt"  # keeps models/members/ a non-empty DVC out when it holds no member
MEMBERS_TEXT = "An ensemble's further models, one directory each (1, 2, ...); none for a single model.\n"


def run(params: Params, root: Path = Path()) -> None:
    processes = params.train.processes
    if processes > 1 and not distributed.launched():  # under an outer torchrun, its world size rules
        if code := distributed.relaunch(processes, "train", dump(params), cwd=root):
            raise SystemExit(code)
        return
    splits, names = data.load_prepared(root / params.data.prepared_dir)
    try:
        if params.model.name == ENSEMBLE:
            train_ensemble(params, splits, names, root)
        else:
            train_single(params, splits, names, root)
    finally:
        distributed.close()


def settings_line(params: Params, job: TrainJob) -> str:
    """Each recipe setting and where it came from: `epochs 3 (recipe), loss bce (train.loss)`, `encoder_lr 5e-05
    (all-mpnet-base-v2 recipe)`."""
    return ", ".join(f"{k} {getattr(job.train if k in TRAIN_KEYS else job.model.arch, k)} ({src})"
                     for k, src in recipe_sources(params).items())


def train_single(params: Params, splits: dict, names: list[str], root: Path) -> None:
    """model.name alone into models/: copied from the model cache when a run of the same content trained it (an
    ensemble's member or another experiment), else trained."""
    job = resolve(params, root / TEACHERS_DIR)
    writer, model_dir, live_dir = distributed.is_writer(), root / MODEL_DIR, root / LIVE_DIR
    how = obtain_member(job, splits, names, model_dir, checkpoints=root / CHECKPOINTS, live_dir=live_dir, first=True,
                        announce=f"{job.model.name} (seed {job.seed}): {settings_line(params, job)}"
                        if writer else None)
    if not writer:
        return
    record = obtained_record(model_dir, how, live_dir)
    write_json(root / TRAIN_METRICS, summary(record))
    write_json(root / RUN_ENVIRONMENT, {"models": [environment(job)]})
    clear_members(root / MEMBERS_DIR, 0)  # a DVC out, without members for a single model
    print(f"{job.model.name} (seed {job.seed}): {how}; best epoch {record['best_epoch']}/{record['epochs_run']}, "
          f"dev macro F1 {record['dev_macro_f1']:.4f} (threshold 0.5) -> {MODEL_DIR}/, {TRAIN_METRICS}")


def clear_members(members: Path, n_members: int) -> None:
    """models/members/ keeps only 1..n_members-1 (the first member lives in models/ itself) and its note."""
    members.mkdir(parents=True, exist_ok=True)
    for stale in members.iterdir():
        if not (stale.name.isdigit() and 0 < int(stale.name) < n_members):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    (members / MEMBERS_NOTE).write_text(MEMBERS_TEXT)


def train_ensemble(params: Params, splits: dict, names: list[str], root: Path) -> None:
    """Each member as `dvc exp run -S model.name=<its architecture>` would train it. A member already in its
    directory, or in the model cache (an experiment of the same architecture, recipe, seed, data, code and machine
    kind trained it), is copied, not trained again. train.json sums the members' train times, reused ones too;
    dvclive/ holds the first member's epochs."""
    n, writer = len(params.ensemble.members), distributed.is_writer()
    model_dir, live_dir = root / MODEL_DIR, root / LIVE_DIR
    if writer:
        clear_members(root / MEMBERS_DIR, n)
    records, environments = [], []
    for index in range(n):
        as_written = member_params(params, index)
        member = resolve(as_written, root / TEACHERS_DIR)
        out = member_dir(model_dir, index)
        head = f"ensemble member {index + 1}/{n}: {member.model.name} (seed {member.seed})"
        how = obtain_member(member, splits, names, out, checkpoints=root / CHECKPOINTS,
                            live_dir=live_dir if index == 0 else None, first=index == 0,
                            announce=f"{head}: {settings_line(as_written, member)}" if writer else None)
        if writer:
            records.append(obtained_record(out, how, live_dir if index == 0 else None))
            environments.append(environment(member))
            print(f"{head}: {how}; dev macro F1 {records[-1]['dev_tuned_macro_f1']:.4f} (tuned) -> {out}/")
    if not writer:
        return
    write_json(root / TRAIN_METRICS, {
        "model": ENSEMBLE,
        "members": " + ".join(r["model"] for r in records),
        "train_time_s": total_time(records),  # reused members counted too
        "params_total": sum(r["params_total"] for r in records),
        **{k: records[0][k] for k in ("device", "precision", "cpu_kind", "gpu") if k in records[0]},
    })
    write_json(root / RUN_ENVIRONMENT, {"models": environments})
    print(f"trained an ensemble of {n}: {' + '.join(r['model'] for r in records)} -> {MODEL_DIR}/, {TRAIN_METRICS}")


def total_time(records: list[dict]) -> float | None:
    """The members' train times summed; None (unknown, never 0) when any member's is unknown."""
    times = [r["train_time_s"] for r in records]
    return None if None in times else round(sum(times), 2)


def obtained_record(model_dir: Path, how: str, live_dir: Path | None) -> dict:
    """The training record of the model in `model_dir`, with the timings of the run that trained it (the model
    cache's record); its epochs replayed into `live_dir` (DVCLive) when it was copied, not trained here."""
    config = read_config(model_dir)
    # a model copied after its cache entry went (pruned, a fresh clone) has no timings left: unknown, never 0
    record = {**config["train"], "train_time_s": None, **cached_timing(config["train"]["run_id"])}
    if live_dir is not None and how != "trained":
        replay_live(live_dir, record.get("history", []), config)
    return record


def obtain_member(member: TrainJob, splits: dict, names: list[str], out: Path, checkpoints: Path,
                  live_dir: Path | None = None, first: bool = False, announce: str | None = None) -> str:
    """The member's model in `out`: kept if there already (whole), copied from the model cache (verified), else
    trained. How, in words; a model found there and not kept says why. `first`: `out` is models/ itself, which holds
    the ensemble's other outputs too (a copy replaces the model's files only). Rank 0 decides for every rank: on
    several machines only its disk and cache count (the others' may differ)."""
    distributed.setup(member.train.device)  # the process group, so rank 0's decision reaches every rank
    writer, how = distributed.is_writer(), None
    if writer:
        if announce:
            print(announce)  # the settings and where each came from, for a kept or copied model too
        how = reuse_or_copy(run_id(member, splits, names), out, first)
    how = distributed.broadcast(how)
    if how is not None:
        return how
    # the first member's epochs are the ensemble's DVCLive curves (models/ holds it)
    fit(member, splits, names, model_dir=out, metrics_path=None, live_dir=live_dir, checkpoint_root=checkpoints)
    return "trained"


def reuse_or_copy(run: str, out: Path, first: bool) -> str | None:
    """How run `run`'s model came to be in `out` without training (kept, or copied from the cache); None: train."""
    problem = reuse_problem(out, run)
    if problem is None:
        return "trained already, kept"
    if problem != "no model":
        print(f"{out}: not kept: {problem}")
    if (cached := cached_model(run)) is None:
        return None
    if not first:  # a member's own directory: nothing else lives there
        shutil.rmtree(out, ignore_errors=True)
    copy_model(cached, out)
    return f"trained by an earlier run, copied from {cached}"
