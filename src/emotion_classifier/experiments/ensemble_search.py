"""Which experiments' models to ensemble, decided on dev only.

    python -m emotion_classifier.experiments.ensemble_search EXP [EXP ...]

Weights are fitted on dev, thresholds tuned and cross-validated on dev. An EXP may also be a model directory (e.g.
`models/members/1`, or a model cache entry: `emotion-cache ls`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import thresholds as T
from ..ensemble import (
    average,
    cross_entropy,
    fit_temperature,
    fit_weights,
    held_out_f1,
    held_out_predictions,
    tempered,
)
from ..errors import UserError, one_line_errors


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
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True, capture_output=True,
                          check=True).stdout.strip()
    named = [r for r in refs if r.rsplit("/", 1)[-1] == name]  # refs/exps/<base[:2]>/<base[2:]>/<name>
    ref = next((r for r in named if "".join(r.split("/")[2:4]) == head), None)  # this commit's, never another's
    if ref is None:
        elsewhere = sorted({"".join(r.split("/")[2:4])[:7] for r in named})
        raise UserError(f"no experiment named {name!r} at this commit ({head[:7]})"
                        + (f"; one exists at {', '.join(elsewhere)}: check that commit out to use it" if elsewhere
                           else " (`dvc exp list`; `dvc exp pull` fetches one)"))
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


def held_out_label_f1(y, held_out, columns: list[int]) -> list[float]:
    """Each label's F1 over the whole of dev with every fold's predictions made by thresholds tuned on the other
    folds (`held_out_predictions`), averaged over repeats: a rare label has too few positives in one fold for a
    per-fold F1."""
    from .. import metrics as M

    return list(np.mean([M.f1_per_label(y, pred)[columns] for _, pred in held_out], axis=0))


def search(experiments: list[str], prepared_dir: str | Path, policy: T.Policy, max_size: int = 5,
           repo: str | Path = ".", temperature: bool = False, every: bool = False,
           labels: list[str] = ()) -> list[str]:
    """Dev only: each combination of the experiments' models that holds the first (`every`: each combination),
    weights fitted on dev, dev F1 with thresholds tuned on dev itself and cross-validated on dev (and each of
    `labels`' held-out F1). Markdown table lines. `temperature`: each model's probabilities are first calibrated by
    a temperature fitted on dev."""
    import itertools
    import tempfile

    from .. import data
    from .. import metrics as M
    from ..inference import EmotionClassifier
    from ..model_dir.model import load

    splits, names = data.load_prepared(prepared_dir)
    unknown = [label for label in labels if label not in names]
    if unknown:
        raise UserError(f"--labels: no label {', '.join(unknown)}; the labels are {', '.join(names)}")
    columns = [names.index(label) for label in labels]
    y, texts = data.label_matrix(splits["dev"]), splits["dev"]["text"]
    metric, min_positives = policy.metric, policy.min_positives
    probs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in experiments:
            source = Path(name) if Path(name).is_dir() else experiment_model(name, Path(tmp) / name, repo)
            model = EmotionClassifier(*load(source), device="cpu")  # a directory's own model, not its members
            probs[name] = model.predict_proba(texts, progress=True)
    if temperature:
        temperatures = {name: fit_temperature(p, y) for name, p in probs.items()}
        calibrated = {name: tempered(p, temperatures[name]) for name, p in probs.items()}
        print("temperatures fitted on dev (dev cross-entropy before -> after): " + ", ".join(
            f"{n} {t:.3f} ({cross_entropy(probs[n], y):.4f} -> {cross_entropy(calibrated[n], y):.4f})"
            for n, t in temperatures.items()))
        probs = calibrated
    lines = ["| models | weights (fitted on dev) | dev macro F1 | dev micro F1 | CV macro F1 | CV micro F1 |"
             + "".join(f" CV {label} |" for label in labels),
             "| --- | --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(labels)]
    combos = (c for size in range(1, min(max_size, len(experiments)) + 1)
              for c in itertools.combinations(experiments, size) if every or experiments[0] in c)
    for combo in combos:
        weights = fit_weights([probs[n] for n in combo], y)
        p = average([probs[n] for n in combo], weights)
        pred = T.apply(p, T.tune(y, p, metric, min_positives)["strategies"]["per_label"])
        held_out = list(held_out_predictions(y, p, metric, min_positives))  # tuned once for every CV column
        cv_macro, cv_micro = held_out_f1(y, held_out)
        lines.append(f"| {' + '.join(combo)} | {', '.join(f'{w:.2f}' for w in weights)} | "
                     f"{M.macro_f1(y, pred):.4f} | {M.micro_f1(y, pred):.4f} | {cv_macro:.4f} | {cv_micro:.4f} |"
                     + "".join(f" {f:.4f} |" for f in held_out_label_f1(y, held_out, columns)))
    return lines


@one_line_errors
def main(argv=None) -> None:
    """python -m emotion_classifier.experiments.ensemble_search EXP [EXP ...]: the dev-only table of ensembles of these
    experiments' models (the first in each, or --every combination), to choose `ensemble.members` from."""
    import argparse

    from ..params import load_params

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.experiments.ensemble_search",
                                 description=main.__doc__)
    ap.add_argument("experiments", nargs="+", help="experiment names (`dvc exp list`) or model directories")
    ap.add_argument("--max-size", type=int, default=5, help="most models in one ensemble")
    ap.add_argument("--every", action="store_true", help="every combination, not only those holding the first")
    ap.add_argument("--labels", default="", help="comma-separated labels whose held-out F1 gets a column each")
    ap.add_argument("--temperature", action="store_true",
                    help="calibrate each model by a temperature fitted on dev before fitting the weights")
    args = ap.parse_args(argv)
    params = load_params()
    print("\n".join(search(args.experiments, params.data.prepared_dir, params.policy, args.max_size,
                           temperature=args.temperature, every=args.every,
                           labels=[label for label in args.labels.split(",") if label])))


if __name__ == "__main__":
    main()
