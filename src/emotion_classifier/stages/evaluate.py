"""Stage evaluate: the one place the test split is scored; every choice was made on dev before."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import bootstrap, data, plots
from .. import metrics as M
from .. import thresholds as T
from ..figures import FIGURES, WITH_INTERVAL
from ..files import atomic_path, write_csv, write_json
from ..inference import EmotionClassifier
from ..params import Params
from ..paths import (
    ALL_SCORES,
    CONFUSION,
    ERROR_COOCCURRENCE,
    EVAL_METRICS,
    INFERENCE_METRICS,
    MODEL_DIR,
    PER_LABEL,
    PRECISION_RECALL,
    RELIABILITY,
    ROC,
    TEST_PREDICTIONS,
)
from ..taxonomy import GOEMOTIONS

ERROR_HEATMAPS = {
    "counts": ("examples with true label i and a false positive j", ".0f"),
    "conditional": ("P(false positive j | true label i)", ".2f"),
    "jaccard": ("Jaccard(true i, false positive j)", ".2f"),
}


def run(params: Params, root: Path = Path()) -> None:
    splits, names = data.load_prepared(root / params.data.prepared_dir)
    eval_params = params.evaluate
    clf = EmotionClassifier.load(root / MODEL_DIR, strategy=eval_params.thresholds, require_thresholds=True,
                                 precision=eval_params.precision, device=eval_params.device)
    dev_y, dev_probs = data.label_matrix(splits["dev"]), clf.predict_proba(splits["dev"]["text"], progress=True)
    dev_scores, _ = M.evaluate(dev_y, dev_probs, T.apply(dev_probs, clf.thresholds))
    t0 = time.perf_counter()
    y, probs = data.label_matrix(splits["test"]), clf.predict_proba(splits["test"]["text"], progress=True)
    speed = len(y) / (time.perf_counter() - t0)
    pred = T.apply(probs, clf.thresholds)
    scores, per_label = M.evaluate(y, probs, pred)
    resampled = bootstrap.samples(y, probs, pred, bootstrap.test_resamples(len(y), eval_params))
    level = eval_params.ci_level
    out = {}
    for k in WITH_INTERVAL:
        lo, hi = bootstrap.interval(resampled[k], level)
        out |= {f"test_{k}": scores[k], f"test_{k}_lo": float(lo), f"test_{k}_hi": float(hi)}
    out |= {f"test_{f.key}": scores[f.key] for f in FIGURES if not f.interval}
    out |= {"dev_micro_f1": dev_scores["micro_f1"], "dev_macro_f1": dev_scores["macro_f1"]}
    if params.data.taxonomy == GOEMOTIONS:  # the roll-ups to the coarser taxonomies, from these same test scores
        out |= rollup_scores(root / MODEL_DIR, splits["test"]["label_ids"], names, probs, eval_params.thresholds)
    write_json(root / EVAL_METRICS, out)
    every_score = {**{f"test_{k}": v for k, v in scores.items()}, **{f"dev_{k}": v for k, v in dev_scores.items()}}
    write_json(root / ALL_SCORES, {"ci_level": level, **out, **every_score})
    # Apart from eval.json: a wall-clock speed differs run to run, the seeded scores do not.
    write_json(root / INFERENCE_METRICS, {"inference_sentences_per_s": round(speed, 1),
                                   **{f"inference_{k}": v for k, v in clf.describe().items()}})
    with atomic_path(root / TEST_PREDICTIONS) as tmp:
        np.savez_compressed(tmp, probs=probs, pred=pred)
    f1_lo, f1_hi = bootstrap.interval(resampled["per_label_f1"], level)
    table = pd.DataFrame({"label": names, "support": per_label["support"], "threshold": clf.thresholds,
                          **{k: per_label[k] for k in ("precision", "recall", "f1")}, "f1_lo": f1_lo, "f1_hi": f1_hi,
                          **{k: per_label[k] for k in ("tp", "fp", "fn", "tn", "auc")}})
    write_csv(table.round(4), root / PER_LABEL)
    write_test_plots(y, probs, pred, per_label, clf.config["name"], eval_params.thresholds, scores, names, root)
    ci = lambda k: f"[{out[f'test_{k}_lo']:.4f}, {out[f'test_{k}_hi']:.4f}]"  # noqa: E731
    print(f"test ({eval_params.thresholds} thresholds): micro F1 {out['test_micro_f1']:.4f} {ci('micro_f1')}, "
          f"macro F1 {out['test_macro_f1']:.4f} {ci('macro_f1')} ({level:.0%} bootstrap intervals) | "
          f"dev micro F1 {out['dev_micro_f1']:.4f}, macro F1 {out['dev_macro_f1']:.4f}")


def rollup_scores(model_dir: Path, label_ids, names: list[str], probs: np.ndarray, strategy: str) -> dict:
    """Test micro and macro F1 of each roll-up tune_thresholds tuned (thresholds.json's taxonomies): the 28 labels'
    probabilities rolled up to a coarse taxonomy, at the thresholds tuned on dev for its groups."""
    from .. import taxonomy as TX
    from ..inference import TAXONOMIES, rollup_section
    from ..model_dir import read_tuned

    out, tuned = {}, read_tuned(model_dir)  # once: reading it hashes the weights
    for taxonomy in tuned.get(TAXONOMIES, {}):
        section = rollup_section(tuned, taxonomy, model_dir)
        y = data.multi_hot(TX.map_label_ids(label_ids, names, taxonomy), len(section["labels"]))
        pred = T.apply(TX.roll_up(probs, names, taxonomy, section["how"]), section["strategies"][strategy])
        out |= {f"test_{taxonomy}_rollup_micro_f1": M.micro_f1(y, pred),
                f"test_{taxonomy}_rollup_macro_f1": M.macro_f1(y, pred)}
    return out


def thinned(x, y, n=300) -> tuple[np.ndarray, np.ndarray]:
    """At most n points of a curve, ends kept: enough to draw it, small enough to diff."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).astype(int))
    return x[keep], y[keep]


def write_test_plots(y, probs, pred, per_label, model: str, strategy: str, scores: dict, names: list[str],
                     root: Path) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    prec, rec, _ = precision_recall_curve(y.ravel(), probs.ravel())
    rec, prec = thinned(rec, prec)
    write_csv(pd.DataFrame({"recall": rec, "precision": prec}).round(5), root / PRECISION_RECALL)
    fpr, tpr, _ = roc_curve(y.ravel(), probs.ravel())
    fpr, tpr = thinned(fpr, tpr)
    write_csv(pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(5), root / ROC)
    plots.confusion_grid(per_label, names, root / CONFUSION,
                         f"{model}: per-label confusion on test ({strategy} thresholds)")
    errors = M.error_cooccurrence(y, pred)
    for kind, (title, fmt) in ERROR_HEATMAPS.items():
        plots.heatmap(errors[kind], names, root / ERROR_COOCCURRENCE[kind],
                      f"{model} on test: {title}", fmt, xlabel="wrongly predicted label j",
                      ylabel="true label i", mask_diagonal=False)
    plots.reliability(M.calibration_bins(y, probs), root / RELIABILITY,
                      f"{model}: reliability on test (ECE {scores['expected_calibration_error']:.4f})")
