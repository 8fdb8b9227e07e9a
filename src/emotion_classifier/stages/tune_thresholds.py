"""Stage tune_thresholds: decision thresholds (and an ensemble's member weights) fitted on dev, scored as evaluate
will score test (its device and precision), into models/thresholds.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import data
from .. import metrics as M
from .. import thresholds as T
from ..ensemble import average, fit_weights
from ..files import write_csv, write_json
from ..inference import TAXONOMIES, EmotionClassifier
from ..model_dir import ONNX_INT8, write_tuned
from ..onnx_backend import int8_record
from ..params import Params
from ..paths import MODEL_DIR, THRESHOLDS_CURVE, THRESHOLDS_METRICS
from ..taxonomy import GOEMOTIONS


def run(params: Params, root: Path = Path()) -> None:
    splits, names = data.load_prepared(root / params.data.prepared_dir)
    dev = splits["dev"]
    policy = params.policy
    # evaluate's device and precision: the thresholds fit the probabilities evaluate will see
    model_dir = root / MODEL_DIR
    clf = EmotionClassifier.load(model_dir, "fixed", precision=params.evaluate.precision,
                                 device=params.evaluate.device, untuned=True)
    y = data.label_matrix(dev)
    member_probs = clf.member_probas(dev["text"], progress=True)
    weights = fit_weights(member_probs, y) if len(member_probs) > 1 else None  # an ensemble's, on dev
    probs = member_probs[0] if weights is None else average(member_probs, weights)
    tuned = policy.tune(y, probs)
    int8_probs = onnx_int8_probs(model_dir, dev["text"], weights) if params.tune_thresholds.onnx_int8 else None
    int8 = policy.tune(y, int8_probs) if int8_probs is not None else None
    fine = params.data.taxonomy == GOEMOTIONS  # the 28 labels: roll-ups to the coarser taxonomies are tuned too
    rollups = {p: rollup_thresholds(dev["label_ids"], names, p_probs, policy) if fine else {}
               for p, p_probs in (("fp32", probs), ("int8", int8_probs)) if p_probs is not None}
    write_tuned(model_dir, {
        "tuned_on": "dev",
        "metric": policy.metric,
        "min_positives": policy.min_positives,
        "labels": names,
        "global_threshold": tuned["global_threshold"],
        "fallback_labels": [names[i] for i in tuned["fallback_labels"]],
        "strategies": tuned["strategies"],
        **({"member_weights": [float(w) for w in weights]} if weights is not None else {}),
        **({TAXONOMIES: rollups["fp32"]} if rollups["fp32"] else {}),
        **({ONNX_INT8: {"global_threshold": int8["global_threshold"], "strategies": int8["strategies"],
                        "tuned_with": int8_record(),  # onnxruntime, policy and CPU kind: each moves int8 scores
                        **({TAXONOMIES: rollups["int8"]} if rollups.get("int8") else {})}}
           if int8 is not None else {}),
    })
    scores = {"global_threshold": tuned["global_threshold"]}
    for strategy in ("global", "per_label"):  # fixed 0.5 is train.json's dev F1
        pred = T.apply(probs, tuned["strategies"][strategy])
        scores[f"{strategy}_dev_micro_f1"] = M.micro_f1(y, pred)
        scores[f"{strategy}_dev_macro_f1"] = M.macro_f1(y, pred)
    if int8 is not None:  # what --backend onnx --quantize gives up, with its own thresholds
        scores["onnx_int8_per_label_dev_macro_f1"] = M.macro_f1(y, T.apply(int8_probs, int8["strategies"]["per_label"]))
    if weights is not None:  # how much the ensemble adds over its best model (thresholds tuned alike)
        alone = [M.macro_f1(y, T.apply(p, policy.tune(y, p)["strategies"]["per_label"])) for p in member_probs]
        scores["best_single_model_dev_macro_f1"] = max(alone)
    write_json(root / THRESHOLDS_METRICS, scores)
    curves = tuned["curves"]
    write_csv(pd.DataFrame({"threshold": T.GRID, "micro_f1": curves["micro_f1"], "macro_f1": curves["macro_f1"]}),
              root / THRESHOLDS_CURVE)
    if tuned["fallback_labels"]:  # too few dev positives to tune alone: said where it happens
        fallback = [names[i] for i in tuned["fallback_labels"]]
        print(f"{len(fallback)} of {len(names)} labels have fewer than {policy.min_positives} dev positives "
              f"(thresholds.min_positives) and take the global threshold {tuned['global_threshold']:.2f}: "
              f"{', '.join(fallback)}")
    for taxonomy, r in rollups["fp32"].items():
        print(f"rolled up to {taxonomy} ({r['how']}; dev CV macro F1 max {r['dev_cv_macro_f1']['max']:.4f}, noisy-or "
              f"{r['dev_cv_macro_f1']['noisy_or']:.4f}): thresholds for {len(r['labels'])} groups")
    print(f"tuned on dev: global {tuned['global_threshold']:.2f}; dev macro F1 global "
          f"{scores['global_dev_macro_f1']:.4f}, per-label {scores['per_label_dev_macro_f1']:.4f}")


def rollup_thresholds(label_ids, names: list[str], probs, policy) -> dict:
    """Per coarse taxonomy: the 28 labels' dev probabilities rolled up (max or noisy-or, whichever gives the higher
    dev macro F1 with thresholds tuned on held-out folds: the CV protocol), thresholds tuned on dev for its groups."""
    from .. import taxonomy as TX
    from ..ensemble import cross_validated_f1

    out = {}
    for taxonomy in TX.GROUPS:
        groups = TX.label_names(taxonomy)
        y = data.multi_hot(TX.map_label_ids(label_ids, names, taxonomy), len(groups))
        scored = {how: TX.roll_up(probs, names, taxonomy, how) for how in ("max", "noisy_or")}
        cv = {how: cross_validated_f1(y, p, policy.metric, policy.min_positives)[0] for how, p in scored.items()}
        how = max(cv, key=cv.get)
        tuned = policy.tune(y, scored[how])
        out[taxonomy] = {"how": how, "labels": groups, "dev_cv_macro_f1": {k: round(v, 4) for k, v in cv.items()},
                         "global_threshold": tuned["global_threshold"], "strategies": tuned["strategies"]}
    return out


def onnx_int8_probs(model_dir: Path, texts, weights):
    """Dev probabilities of the model as `--backend onnx --quantize` serves it (each member int8, averaged with the
    fp32 weights), to tune its own thresholds on; None without onnxruntime."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("no onnxruntime: no thresholds tuned for the int8 model (pip install -e '.[onnx]')")
        return None
    try:
        clf = EmotionClassifier.load(model_dir, "fixed", backend="onnx", quantize=True, device="cpu", untuned=True)
    except RuntimeError as e:  # an architecture of one's own may use an op the ONNX exporter lacks
        print(f"no thresholds tuned for the int8 model: it does not export to ONNX ({str(e).splitlines()[0]})")
        return None
    member_probs = clf.member_probas(texts, progress=True)
    return member_probs[0] if weights is None else average(member_probs, weights)
