"""Teacher files for distillation (`train.teacher: F.npz`, see training/distill.py): probabilities on the training
split, one row per example, in its order.

    python -m emotion_classifier.experiments.teach --folds 2 teachers/F.npz   # cross-fitted (`make teacher`)
    python -m emotion_classifier.experiments.teach models teachers/F.npz      # one trained model's (in-sample)
    python -m emotion_classifier.experiments.teach --score teachers/F.npz     # its CV F1 against the train labels

Cross-fitted: the training split is cut into K folds; each member of `ensemble.members` (or --members) trains on
the other folds and scores its fold, so no example's target comes from a model that saw it. Each fold's members also
score dev; the members' weights are fitted there, as tune_thresholds fits them. Dev and test never enter a
teacher's training (dev selects epochs, as in every run). A fold's member is copied from the model cache, or resumed,
when it trained before. The file holds its provenance (members, folds, seeds, commit, CPU kind, each fold's time).
Kept apart from distill.py, which `train` imports: writing a teacher trains and scores, training reads a file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import UserError, one_line_errors
from ..files import atomic_path
from ..paths import CHECKPOINTS, TEACHERS_DIR


def write_teacher(model_dir: str | Path, out: str | Path, prepared_dir: str | Path) -> Path:
    """One trained model's (or ensemble's, weighted as tuned) probabilities: it trained on these very examples, so
    its targets sit close to the labels (reports/ensembles.md, second round). Prefer the cross-fitted teacher."""
    from .. import data
    from ..inference import EmotionClassifier

    clf = EmotionClassifier.load(model_dir, "fixed", precision="fp32")  # an ensemble: with its tuned weights
    splits, _ = data.load_prepared(prepared_dir)
    probs = clf.predict_proba(splits["train"]["text"], progress=True)
    return save(out, splits["train"]["id"], probs, {"kind": "in-sample", "model_dir": str(model_dir)})


GRID = 1024  # probabilities are kept as multiples of 1/GRID: float16's own step near 1, and half the file in git


def save(path: str | Path, ids, probs: np.ndarray, provenance: dict) -> Path:
    """ids and float16 probs (what train reads), rounded to 1/GRID so the file deflates to ~1.3 MB for the whole
    training split, and the provenance as JSON, in one .npz, atomically."""
    rounded = (np.round(np.asarray(probs, dtype=np.float64) * GRID) / GRID).astype(np.float16)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, ids=np.asarray(ids).astype(str), probs=rounded,
                            provenance=np.array(json.dumps({**provenance, "grid": GRID}, sort_keys=True)))
    return Path(path)


def folds_of(n: int, k: int, seed: int) -> np.ndarray:
    """Each of n training examples' fold (0..k-1): a seeded permutation dealt round, so the folds differ by one at
    most."""
    if not 2 <= k <= n:
        raise UserError(f"--folds {k}: expected 2 to {n} (the training examples)")
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


def cross_fit(params, splits: dict, names: list[str], folds: int, work: Path) -> tuple[np.ndarray, dict]:
    """Out-of-fold probabilities of the weighted members for every training example, and their provenance."""
    import dataclasses

    from ..data import multi_hot
    from ..ensemble import average, fit_weights
    from ..hardware import cpu_kind
    from ..inference import EmotionClassifier
    from ..params import member_params, resolve
    from ..stages.train import obtain_member

    # a teacher learns from the labels alone, whatever params.yaml's train.teacher says (main may be its student)
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, teacher=""))
    train, dev = splits["train"], splits["dev"]
    fold = folds_of(len(train), folds, params.seed)
    jobs = [resolve(member_params(params, i), TEACHERS_DIR) for i in range(len(params.ensemble.members))]
    if not jobs:
        raise UserError("a cross-fitted teacher needs members: ensemble.members in params.yaml, or --members")
    held = [np.zeros((len(train), len(names)), np.float32) for _ in jobs]
    dev_probs = [np.zeros((len(dev), len(names)), np.float64) for _ in jobs]
    runs = []
    for k in range(folds):
        part = {**splits, "train": train[fold != k].reset_index(drop=True)}
        for m, job in enumerate(jobs):
            t0 = time.time()
            print(f"teacher fold {k + 1}/{folds}, member {m + 1}/{len(jobs)}: {job.model.name} (seed {job.seed}) "
                  f"on {len(part['train']):,} examples", flush=True)
            out = work / f"fold{k}-member{m}"
            how = obtain_member(job, part, names, out, checkpoints=work / CHECKPOINTS)
            clf = EmotionClassifier.load(out, "fixed", precision="fp32")
            held[m][fold == k] = clf.predict_proba(list(train["text"][fold == k]), progress=True)
            dev_probs[m] += clf.predict_proba(list(dev["text"])) / folds
            record = json.loads((out / "config.json").read_text())["train"]
            runs.append({"fold": k, "member": m, "how": how, "run_id": record["run_id"],
                         "train_examples": len(part["train"]), "seconds": round(time.time() - t0, 1)})
    weights = fit_weights(dev_probs, multi_hot(dev["label_ids"], len(names)))
    return average(held, weights), {
        "kind": "cross-fitted", "folds": folds, "fold_seed": params.seed, "members": list(params.ensemble.members),
        "member_weights": [round(float(w), 6) for w in weights], "runs": runs, "cpu_kind": cpu_kind(),
        "commit": _commit(), "seconds": round(sum(r["seconds"] for r in runs), 1)}


def score(path: str | Path, prepared_dir: str | Path, metric: str = "micro_f1", min_positives: int = 5
          ) -> tuple[float, float]:
    """A teacher file's CV macro and micro F1 against the training labels (thresholds tuned on held-out folds, the
    protocol of reports/ensembles.md): how good the targets are that a student learns from."""
    from .. import data
    from ..ensemble import cross_validated_f1
    from ..training.distill import training_targets

    splits, _ = data.load_prepared(prepared_dir)
    y = data.label_matrix(splits["train"])
    probs = training_targets(Path(path), 1.0, splits["train"], y)  # read and checked as train reads it
    return cross_validated_f1(y, probs, metric, min_positives)


def _commit() -> str | None:
    import subprocess

    r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return r.stdout.strip() or None


@one_line_errors
def main(argv=None) -> None:
    """Write a teacher file for train.teacher: cross-fitted by folds, or one trained model's probabilities."""
    import argparse

    import yaml

    from .. import data
    from ..params import load_params, with_overrides

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.experiments.teach", description=main.__doc__)
    ap.add_argument("--score", metavar="FILE", help="print FILE's CV macro / micro F1 against the training labels")
    ap.add_argument("paths", nargs="*", metavar="[MODEL_DIR] OUT",
                    help=f"OUT: the file to write, under {TEACHERS_DIR}/ for train.teacher; with MODEL_DIR first, that "
                         "trained model's probabilities instead (it saw every example)")
    ap.add_argument("--folds", type=int, default=2, help="K: each member trains K times, on K-1 folds (default 2)")
    ap.add_argument("--members", help="the teacher's members as ensemble.members is written, e.g. "
                    "'[{model.name: transformer_finetune}, {model.name: bilstm_lasttoken}]' (default: params.yaml's)")
    ap.add_argument("--work", default="build/teacher", help="where the fold models are kept (default build/teacher)")
    args = ap.parse_args(argv)
    if (args.score and args.paths) or not (args.score or len(args.paths) in (1, 2)):
        ap.error("give OUT, or MODEL_DIR OUT, or --score FILE")
    params = load_params()
    if args.score:
        macro, micro = score(args.score, params.data.prepared_dir, params.policy.metric, params.policy.min_positives)
        print(f"{args.score}: CV macro F1 {macro:.4f}, micro F1 {micro:.4f} against the training labels")
        return
    if len(args.paths) == 2:
        path = write_teacher(args.paths[0], args.paths[1], params.data.prepared_dir)
        print(f"in-sample teacher probabilities on the training split -> {path}")
        return
    if args.members:
        params = with_overrides(params, {"ensemble.members": yaml.safe_load(args.members)})
    splits, names = data.load_prepared(params.data.prepared_dir)
    probs, provenance = cross_fit(params, splits, names, args.folds, Path(args.work))
    path = save(args.paths[0], splits["train"]["id"], probs, provenance)
    print(f"cross-fitted teacher ({args.folds} folds, {len(provenance['runs'])} fold models, "
          f"{provenance['seconds']:.0f} s on {provenance['cpu_kind']}; member weights "
          f"{provenance['member_weights']}) -> {path}")

if __name__ == "__main__":
    main()
