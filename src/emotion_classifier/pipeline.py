"""One function per DVC stage: read params, call the library, write the stage's outputs.

Called by `stages/*.py` (what dvc.yaml runs) and by the `emotion-*` console scripts.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis, data, plots, text
from . import metrics as M
from . import thresholds as T
from .io import atomic_path, read_json, write_json

MODEL_DIR = "models"
PARAMS_CHECKED = "data/params_checked"

HEATMAPS = {
    "counts": ("Label co-occurrence in train (examples carrying both i and j)", ".0f"),
    "conditional": ("P(j | i) in train: share of examples with label i that also carry j", ".2f"),
    "jaccard": ("Jaccard(i, j) in train: both / either", ".2f"),
}


def check_params(params: dict) -> None:
    """params.yaml was validated on loading; (re)write a file whose content never changes. Every stage
    depends on it, so DVC runs this first and a rejected param stops `dvc repro` before DVC deletes
    any good output; unchanged content reruns nothing."""
    with atomic_path(PARAMS_CHECKED) as tmp:
        tmp.write_text("params.yaml passed emotion_classifier.params validation\n")


def prepare(params: dict) -> None:
    counts = data.prepare(
        params["data"]["raw_dir"],
        params["data"]["prepared_dir"],
        max_examples=params["data"]["max_examples"],
        subset_seed=params["prepare"]["subset_seed"],
    )
    print("prepared " + ", ".join(f"{s}: {n}" for s, n in counts.items()) + f" -> {params['data']['prepared_dir']}")


def analyze_dataset(params: dict, metrics_path="metrics/dataset.json", plots_dir="plots/dataset") -> None:
    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    tok = text.load_tokenizer(params["model"]["encoder"])
    max_len = params["analyze_dataset"]["max_length"]
    lengths = {s: np.array([len(ids) for ids in text.tokenize(tok, df["text"], max_len)]) for s, df in splits.items()}
    metrics, dist, co = analysis.analyze(splits, names, lengths)
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "label_distribution.csv") as tmp:
        dist.to_csv(tmp, index=False)
    for kind, (title, fmt) in HEATMAPS.items():
        plots.heatmap(co[kind], names, plots_dir / f"cooccurrence_{kind}.png", title, fmt)
    write_json(metrics_path, metrics)
    print(f"analyzed {', '.join(f'{s}: {len(df)}' for s, df in splits.items())} -> {metrics_path}, {plots_dir}/")


def train(params: dict) -> None:
    from . import distributed
    from .train import fit

    processes = params["train"]["processes"]
    if processes > 1 and not distributed.launched():  # under an outer torchrun, its world size rules
        if code := distributed.relaunch(processes, "train", params):
            raise SystemExit(code)
        return
    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    try:
        result = fit(params, splits, names)
    finally:
        distributed.close()
    if not distributed.is_writer():
        return
    print(f"trained {result['model']}: best epoch {result['best_epoch']}/{result['epochs_run']}, "
          f"dev macro F1 {result['dev_macro_f1']:.4f} (threshold 0.5) -> models/, metrics/train.json")


def _csv(df: pd.DataFrame, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _finite(d: dict) -> dict:
    """JSON has no NaN: an undefined metric is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def tune_thresholds(params: dict) -> None:
    from .inference import EmotionClassifier
    from .models import weights_hash

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    dev = splits["dev"]
    # evaluate's device and precision: the thresholds fit the probabilities evaluate will see
    clf = EmotionClassifier.load(MODEL_DIR, "fixed", precision=params["evaluate"]["precision"],
                                 device=params["evaluate"]["device"])
    probs, y = clf.predict_proba(dev["text"], progress=True), data.label_matrix(dev)
    tp = params["thresholds"]
    res = T.tune(y, probs, tp["metric"], tp["min_positives"])
    write_json(f"{MODEL_DIR}/thresholds.json", {
        "weights_sha256": weights_hash(MODEL_DIR),
        "tuned_on": "dev",
        "metric": tp["metric"],
        "min_positives": tp["min_positives"],
        "labels": names,
        "global_threshold": res["global_threshold"],
        "fallback_labels": [names[i] for i in res["fallback_labels"]],
        "strategies": res["strategies"],
    })
    m = {"global_threshold": res["global_threshold"]}
    for s, th in res["strategies"].items():
        pred = T.apply(probs, th)
        m[f"{s}_dev_micro_f1"] = M.micro_f1(y, pred)
        m[f"{s}_dev_macro_f1"] = M.macro_f1(y, pred)
    write_json("metrics/thresholds.json", m)
    c = res["curves"]
    _csv(pd.DataFrame({"threshold": T.GRID, "micro_f1": c["micro_f1"], "macro_f1": c["macro_f1"]}),
         "plots/thresholds/f1_vs_threshold.csv")
    print(f"tuned on dev: global {res['global_threshold']:.2f}; dev macro F1 fixed {m['fixed_dev_macro_f1']:.4f}, "
          f"global {m['global_dev_macro_f1']:.4f}, per-label {m['per_label_dev_macro_f1']:.4f}")


ERROR_HEATMAPS = {
    "counts": ("examples with true label i and a false positive j", ".0f"),
    "conditional": ("P(false positive j | true label i)", ".2f"),
    "jaccard": ("Jaccard(true i, false positive j)", ".2f"),
}
EVAL_PLOTS = "plots/eval"
MAIN_FIGURES = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss", "roc_auc_macro")


def _curve(x, y, n=300) -> tuple[np.ndarray, np.ndarray]:
    keep = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).astype(int))
    return x[keep], y[keep]


def evaluate(params: dict) -> None:
    """The one place the test split is scored; every choice was made on dev before."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    from .inference import EmotionClassifier

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    strategy = params["evaluate"]["thresholds"]
    clf = EmotionClassifier.load(MODEL_DIR, strategy=strategy, require_thresholds=True,
                                 precision=params["evaluate"]["precision"], device=params["evaluate"]["device"])
    out: dict = {}
    for split in ("dev", "test"):
        df = splits[split]
        t0 = time.perf_counter()
        y, probs = data.label_matrix(df), clf.predict_proba(df["text"], progress=True)
        speed = len(df) / (time.perf_counter() - t0)
        pred = T.apply(probs, clf.thresholds)
        scores, per_label = M.evaluate(y, probs, pred)
        if split == "dev":
            out.update({f"dev_{k}": scores[k] for k in MAIN_FIGURES})
            continue
        out = {**{f"test_{k}": v for k, v in scores.items()}, **out}
        # Apart from eval.json: a wall-clock speed differs run to run, the seeded scores do not.
        inference = {"inference_sentences_per_s": round(speed, 1),
                     **{f"inference_{k}": v for k, v in clf.describe().items()}}
        table = pd.DataFrame({"label": names, "support": per_label["support"], "threshold": clf.thresholds,
                              **{k: per_label[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn", "tn",
                                                           "auc")}})
        _csv(table.round(4), f"{EVAL_PLOTS}/per_label.csv")
        prec, rec, _ = precision_recall_curve(y.ravel(), probs.ravel())
        rec, prec = _curve(rec, prec)
        _csv(pd.DataFrame({"recall": rec, "precision": prec}).round(5), f"{EVAL_PLOTS}/precision_recall.csv")
        fpr, tpr, _ = roc_curve(y.ravel(), probs.ravel())
        fpr, tpr = _curve(fpr, tpr)
        _csv(pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(5), f"{EVAL_PLOTS}/roc.csv")
        model = clf.config["name"]
        plots.confusion_grid(per_label, names, f"{EVAL_PLOTS}/confusion_matrices.png",
                             f"{model}: per-label confusion on test ({strategy} thresholds)")
        errors = M.error_cooccurrence(y, pred)
        for kind, (title, fmt) in ERROR_HEATMAPS.items():
            plots.heatmap(errors[kind], names, f"{EVAL_PLOTS}/error_cooccurrence_{kind}.png",
                          f"{model} on test: {title}", fmt, xlabel="wrongly predicted label j",
                          ylabel="true label i", mask_diagonal=False)
        plots.reliability(M.calibration_bins(y, probs), f"{EVAL_PLOTS}/reliability.png",
                          f"{model}: reliability on test (ECE {scores['expected_calibration_error']:.4f})")
    write_json("metrics/eval.json", _finite(out))
    write_json("metrics/inference.json", inference)
    print(f"test ({strategy} thresholds): micro F1 {out['test_micro_f1']:.4f}, macro F1 {out['test_macro_f1']:.4f}"
          f" | dev micro F1 {out['dev_micro_f1']:.4f}, macro F1 {out['dev_macro_f1']:.4f}")



def compare(params: dict) -> None:
    """This experiment's model beside the TF-IDF baseline (trained here, thresholds tuned on dev the
    same way) and the published references, in metrics/compare.json and reports/compare.md."""
    import yaml

    from .baseline import fit_predict

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    cp, tp = params["compare"], params["thresholds"]
    strategy = params["evaluate"]["thresholds"]
    y = {s: data.label_matrix(df) for s, df in splits.items()}
    probs = fit_predict(splits["train"]["text"], y["train"], {s: splits[s]["text"] for s in ("dev", "test")},
                        max_features=cp["tfidf_max_features"], ngram_max=cp["tfidf_ngram_max"], C=cp["C"],
                        seed=params["seed"])
    th = T.tune(y["dev"], probs["dev"], tp["metric"], tp["min_positives"])["strategies"][strategy]
    base, base_per_label = M.evaluate(y["test"], probs["test"], T.apply(probs["test"], th))

    model_name = read_json(f"{MODEL_DIR}/config.json")["name"]
    ev = read_json("metrics/eval.json")
    model = {k: ev[f"test_{k}"] for k in MAIN_FIGURES}
    model_f1 = pd.read_csv(f"{EVAL_PLOTS}/per_label.csv")["f1"].to_numpy()
    ref_all = yaml.safe_load(Path("reference/results.yaml").read_text())
    ref = ref_all["reference_project"][model_name]

    out = {f"model_{k}": v for k, v in model.items()}
    out |= {f"baseline_{k}": base[k] for k in MAIN_FIGURES}
    out |= {f"model_minus_baseline_{k}": model[k] - base[k] for k in MAIN_FIGURES}
    out |= {f"reference_{k}": v for k, v in ref.items()}
    out |= {f"model_minus_reference_{k}": model[k] - v for k, v in ref.items()}
    write_json("metrics/compare.json", _finite(out))
    _csv(pd.DataFrame([(n, s, round(float(f), 4)) for s, f1s in ((model_name, model_f1),
                                                                  ("tfidf_logreg", base_per_label["f1"]))
                       for n, f in zip(names, f1s)], columns=["label", "series", "f1"]),
         "plots/compare/per_label_f1.csv")

    rows = [(f"**{model_name}** (this experiment)", model),
            ("TF-IDF + logistic regression (trained in this stage)", base),
            (f"reference project, {model_name}", ref)]
    rows += [(f"reference project, {a}", r) for a, r in ref_all["reference_project"].items() if a != model_name]
    rows.append(("GoEmotions paper, BERT-base", ref_all["goemotions_paper"]["bert_base"]))
    cols = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss")

    def cell(v):
        return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"

    lines = [
        "# Comparison on the GoEmotions test split",
        "",
        f"Model: `{model_name}`; thresholds: `{strategy}` (tuned on dev for the model and the baseline alike).",
        "Generated by `dvc repro compare` (`emotion-compare`); reference figures from `reference/results.yaml`.",
        "",
        "| system | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
        "| --- |" + " ---: |" * len(cols),
    ]
    lines += [f"| {name} | " + " | ".join(cell(r.get(c)) for c in cols) + " |" for name, r in rows]
    lines += ["", "## Per-label F1: model vs baseline", "", f"| label | {model_name} | tfidf_logreg | difference |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {n} | {a:.3f} | {b:.3f} | {a - b:+.3f} |" for n, a, b in zip(names, model_f1, base_per_label["f1"])]
    Path("reports").mkdir(exist_ok=True)
    with atomic_path("reports/compare.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"compare: {model_name} test macro F1 {model['macro_f1']:.4f} vs baseline {base['macro_f1']:.4f} "
          f"vs reference {ref['macro_f1']:.4f} -> reports/compare.md")
