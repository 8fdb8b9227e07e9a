"""Ensembles: a weighted average of the members' probabilities, the weights fitted on dev."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError


def average(member_probs: list[np.ndarray], weights) -> np.ndarray:
    return np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(member_probs), axes=1).astype(np.float32)


def fit_weights(member_probs: list[np.ndarray], y: np.ndarray, iterations: int = 500, tol: float = 1e-9
                ) -> np.ndarray:
    """Mixture weights (>= 0, summing to 1) that minimise the binary cross-entropy of the averaged
    probabilities on (dev) labels y. The averaged model is a mixture: each label's likelihood is
    sum_k w_k L_k, L_k = p_k where y = 1 and 1 - p_k where y = 0, so EM fits w and never lowers the
    likelihood. A smooth, proper score rather than F1: it does not chase the thresholds' noise."""
    y = y.astype(bool)
    like = np.stack([np.where(y, p, 1 - p).ravel() for p in member_probs]).astype(np.float64)
    like = np.clip(like, 1e-7, 1.0)
    w = np.full(len(member_probs), 1.0 / len(member_probs))
    last = -np.inf
    for _ in range(iterations):
        mix = w @ like
        loglik = float(np.log(mix).mean())
        if loglik - last < tol:
            break
        last = loglik
        w = w * (like / mix).mean(axis=1)
        w /= w.sum()
    return w


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the dev cross-entropy of sigmoid(logit / T): one number that makes an
    over- or under-confident model's probabilities comparable with the others' before they are averaged."""
    from scipy.optimize import minimize_scalar

    return float(minimize_scalar(lambda t: cross_entropy(tempered(probs, t), y), bounds=(0.05, 20),
                                 method="bounded").x)


def cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(y.astype(bool), np.log(p), np.log1p(-p))))


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    return (1 / (1 + np.exp(-logit(probs) / temperature))).astype(np.float32)


def logit(probs: np.ndarray) -> np.ndarray:
    """The inverse of the sigmoid, clipped away from 0 and 1 (float64)."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def cross_validated_f1(y: np.ndarray, probs: np.ndarray, metric: str = "micro_f1", min_positives: int = 5,
                       folds: int = 5, repeats: int = 4) -> tuple[float, float]:
    """Macro and micro F1 with per-label thresholds tuned on the other folds of dev, averaged over folds
    and repeats: dev's own tuned F1 flatters every model (the thresholds fit its noise), this does not."""
    from . import metrics as M
    from . import thresholds as T

    macro, micro = [], []
    for repeat in range(repeats):
        parts = np.array_split(np.random.default_rng(repeat).permutation(len(y)), folds)
        for k in range(folds):
            fit_on = np.concatenate([parts[j] for j in range(folds) if j != k])
            tuned = T.tune(y[fit_on], probs[fit_on], metric, min_positives)["strategies"]["per_label"]
            pred = T.apply(probs[parts[k]], tuned)
            macro.append(M.macro_f1(y[parts[k]], pred))
            micro.append(M.micro_f1(y[parts[k]], pred))
    return float(np.mean(macro)), float(np.mean(micro))


def experiment_model(name: str, dest: str | Path, repo: str | Path = ".") -> Path:
    """The model directory an experiment (`dvc exp run -n NAME`) trained, copied out of the local DVC
    cache (no `dvc exp apply`, the workspace stays as it is)."""
    import json
    import shutil
    import subprocess

    import yaml

    repo, dest = Path(repo), Path(dest)
    refs = subprocess.run(["git", "for-each-ref", "refs/exps", "--format=%(refname)"], cwd=repo, text=True,
                          capture_output=True, check=True).stdout.split()
    ref = next((r for r in refs if r.rsplit("/", 1)[-1] == name), None)
    if ref is None:
        raise UserError(f"no experiment named {name!r} here (`dvc exp list --all-commits`; `dvc exp pull` fetches one)")
    lock = yaml.safe_load(subprocess.run(["git", "show", f"{ref}:dvc.lock"], cwd=repo, text=True,
                                         capture_output=True, check=True).stdout)
    cache = repo / ".dvc/cache/files/md5"
    for out in lock["stages"]["train"]["outs"]:
        if not out["path"].startswith("models/"):
            continue
        target, md5 = dest / out["path"][len("models/"):], out["md5"]
        files = (json.loads((cache / md5[:2] / md5[2:]).read_text()) if md5.endswith(".dir")
                 else [{"relpath": "", "md5": md5}])
        for f in files:
            path = target / f["relpath"] if f["relpath"] else target
            path.parent.mkdir(parents=True, exist_ok=True)
            src = cache / f["md5"][:2] / f["md5"][2:]
            if not src.exists():
                raise UserError(f"{name}: {out['path']} is not in the local DVC cache; `dvc exp pull` it first")
            shutil.copy(src, path)
    return dest


def search(experiments: list[str], params: dict, max_size: int = 5, repo: str | Path = ".",
           temperature: bool = False) -> list[str]:
    """Dev only: each combination of the experiments' models that holds the first, weights fitted on dev,
    dev F1 with thresholds tuned on dev itself and cross-validated on dev. Markdown table lines.
    `temperature`: each model's probabilities are first calibrated by a temperature fitted on dev."""
    import itertools
    import tempfile

    from . import data, models
    from . import metrics as M
    from . import thresholds as T
    from .inference import EmotionClassifier

    splits, _ = data.load_prepared(params["data"]["prepared_dir"])
    y, texts = data.label_matrix(splits["dev"]), splits["dev"]["text"]
    metric, min_positives = params["thresholds"]["metric"], params["thresholds"]["min_positives"]
    probs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in experiments:
            model = EmotionClassifier(*models.load(experiment_model(name, Path(tmp) / name, repo)), device="cpu")
            probs[name] = model.predict_proba(texts, progress=True)
    if temperature:
        temperatures = {name: fit_temperature(p, y) for name, p in probs.items()}
        calibrated = {name: tempered(p, temperatures[name]) for name, p in probs.items()}
        print("temperatures fitted on dev (dev cross-entropy before -> after): " + ", ".join(
            f"{n} {t:.3f} ({cross_entropy(probs[n], y):.4f} -> {cross_entropy(calibrated[n], y):.4f})"
            for n, t in temperatures.items()))
        probs = calibrated
    lines = ["| models | weights (fitted on dev) | dev macro F1 | dev micro F1 | CV macro F1 | CV micro F1 |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    combos = (c for size in range(1, min(max_size, len(experiments)) + 1)
              for c in itertools.combinations(experiments, size) if experiments[0] in c)
    for combo in combos:
        weights = fit_weights([probs[n] for n in combo], y)
        p = average([probs[n] for n in combo], weights)
        pred = T.apply(p, T.tune(y, p, metric, min_positives)["strategies"]["per_label"])
        cv_macro, cv_micro = cross_validated_f1(y, p, metric, min_positives)
        lines.append(f"| {' + '.join(combo)} | {', '.join(f'{w:.2f}' for w in weights)} | "
                     f"{M.macro_f1(y, pred):.4f} | {M.micro_f1(y, pred):.4f} | {cv_macro:.4f} | {cv_micro:.4f} |")
    return lines


def main(argv=None) -> None:
    """python -m emotion_classifier.ensemble EXP [EXP ...]: the dev-only table of ensembles of these
    experiments' models (the first in each), to choose `ensemble.members` from."""
    import argparse
    import sys

    from .params import load_params

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.ensemble", description=main.__doc__)
    ap.add_argument("experiments", nargs="+", help="experiment names (dvc exp list --all-commits)")
    ap.add_argument("--max-size", type=int, default=5, help="most models in one ensemble")
    ap.add_argument("--temperature", action="store_true",
                    help="calibrate each model by a temperature fitted on dev before fitting the weights")
    args = ap.parse_args(argv)
    try:
        print("\n".join(search(args.experiments, load_params(), args.max_size, temperature=args.temperature)))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
