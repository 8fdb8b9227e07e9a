"""One function per DVC stage: read params, call the library, write the stage's outputs.

Called by `stages/*.py` (what dvc.yaml runs) and by the `emotion-*` console scripts.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import data
from .io import atomic_path, read_json, write_json
from .paths import (
    COMPARE_METRICS,
    COMPARE_PLOTS,
    COMPARE_REPORT,
    DATASET_METRICS,
    DATASET_PLOTS,
    EVAL_METRICS,
    EVAL_PLOTS,
    INFERENCE_METRICS,
    LIVE_DIR,
    MEMBERS_DIR,
    MODEL_DIR,
    PARAMS_CHECKED,
    PER_LABEL,
    TEST_PREDICTIONS,
    THRESHOLDS_METRICS,
    THRESHOLDS_PLOTS,
    TRAIN_METRICS,
)

# Each stage imports what it runs inside its function: dvc.yaml lists exactly those modules as its deps
# (tests/test_dvc_deps.py walks the imports), so a change to one stage's code reruns only that stage.

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


DATASET_SUMMARY = ("train.examples", "dev.examples", "test.examples", "train.token_length_p99")  # the metrics


def analyze_dataset(params: dict, metrics_path=DATASET_METRICS, plots_dir=DATASET_PLOTS) -> None:
    """Every statistic goes to plots/dataset/statistics.json; a handful are DVC metrics, so that
    `dvc metrics show` and `dvc exp show` lead with the scores, not 84 label counts."""
    from . import analysis, plots, text

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    tok = text.load_tokenizer(params["model"]["encoder"])
    max_len = params["analyze_dataset"]["max_length"]
    lengths = {s: np.array([len(ids) for ids in text.tokenize(tok, df["text"], max_len)]) for s, df in splits.items()}
    statistics, dist, co = analysis.analyze(splits, names, lengths)
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "label_distribution.csv") as tmp:
        dist.to_csv(tmp, index=False)
    for kind, (title, fmt) in HEATMAPS.items():
        plots.heatmap(co[kind], names, plots_dir / f"cooccurrence_{kind}.png", title, fmt)
    write_json(plots_dir / "statistics.json", statistics)
    write_json(metrics_path, {k: statistics[k] for k in DATASET_SUMMARY})
    print(f"analyzed {', '.join(f'{s}: {len(df)}' for s, df in splits.items())} -> {metrics_path}, {plots_dir}/")


def train(params: dict) -> None:
    """model.name alone, with its recipe; or, for model.name ensemble, each member with its own: the first into
    models/, the rest into models/members/<i>/ (kept by DVC across runs: persist)."""
    from . import distributed
    from .params import ENSEMBLE

    processes = params["train"]["processes"]
    if processes > 1 and not distributed.launched():  # under an outer torchrun, its world size rules
        if code := distributed.relaunch(processes, "train", params):
            raise SystemExit(code)
        return
    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    try:
        if params["model"]["name"] == ENSEMBLE:
            train_ensemble(params, splits, names)
        else:
            train_single(params, splits, names)
    finally:
        distributed.close()


def _settings_line(params: dict, resolved: dict) -> str:
    from .params import recipe_sources

    sources = recipe_sources(params)
    return ", ".join(f"{k} {resolved['train'][k]} ({'recipe' if src == 'recipe' else src})"
                     for k, src in sources.items())


def train_single(params: dict, splits: dict, names: list[str]) -> None:
    from . import distributed
    from .params import resolve
    from .train import fit

    resolved = resolve(params)
    if distributed.is_writer():
        print(f"training {params['model']['name']} (seed {params['seed']}): {_settings_line(params, resolved)}")
    result = fit(resolved, splits, names)
    if not distributed.is_writer():
        return
    _clear_members(0)  # a DVC out, empty for a single model
    print(f"trained {result['model']}: best epoch {result['best_epoch']}/{result['epochs_run']}, "
          f"dev macro F1 {result['dev_macro_f1']:.4f} (threshold 0.5) -> {MODEL_DIR}/, {TRAIN_METRICS}")


def _clear_members(n_members: int) -> None:
    """models/members/ keeps only 1..n_members-1 (the first member lives in models/ itself)."""
    import shutil

    Path(MEMBERS_DIR).mkdir(parents=True, exist_ok=True)
    for stale in Path(MEMBERS_DIR).iterdir():
        if not (stale.name.isdigit() and 0 < int(stale.name) < n_members):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def train_ensemble(params: dict, splits: dict, names: list[str]) -> None:
    """Each member as `dvc exp run -S model.name=<its architecture>` would train it. A member already in its
    directory, or in the model cache (an experiment of the same architecture, recipe, seed, data, code and machine
    kind trained it), is copied, not trained again. train.json sums the members' train times, reused ones too;
    dvclive/ holds the first member's epochs."""
    import shutil

    from . import distributed
    from .models import read_config
    from .params import ENSEMBLE, member_params
    from .train import TIMING, cached_model, cached_timing, fit, replay_live, trained_already

    n, writer = len(params["ensemble"]["members"]), distributed.is_writer()
    if writer:
        _clear_members(n)
    records = []
    for index in range(n):
        member = member_params(params, index)
        out = MODEL_DIR if index == 0 else f"{MEMBERS_DIR}/{index}"
        head = f"ensemble member {index + 1}/{n}: {member['model']['name']} (seed {member['seed']})"
        if trained_already(member, splits, out):
            how = "trained already, kept"
        elif (cached := cached_model(member, splits)) is not None:
            how = f"trained by an earlier run, copied from {cached}"
            if writer:
                if index:
                    shutil.rmtree(out, ignore_errors=True)
                shutil.copytree(cached, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(TIMING))
        else:
            how = "trained"
            if writer:
                print(f"{head}: {_settings_line(member_params(params, index, resolved=False), member)}")
            # the first member's epochs are the ensemble's DVCLive curves (models/ holds it)
            fit(member, splits, names, model_dir=out, metrics_path=None, live_dir=None if index else LIVE_DIR)
        if writer:
            record = read_config(out)["train"]
            records.append({**record, **cached_timing(record["run_id"])})  # timings live in the cache only
            if index == 0 and how != "trained":
                replay_live(LIVE_DIR, records[0].get("history", []))
            print(f"{head}: {how}; dev macro F1 {records[-1]['dev_tuned_macro_f1']:.4f} (tuned) -> {out}/")
    if not distributed.is_writer():
        return
    write_json(TRAIN_METRICS, {
        "model": ENSEMBLE,
        "members": " + ".join(r["model"] for r in records),
        "train_time_s": round(sum(r.get("train_time_s", 0.0) for r in records), 2),  # reused members counted too
        "params_total": sum(r["params_total"] for r in records),
        **{k: records[0][k] for k in ("device", "precision")},
    })
    print(f"trained an ensemble of {n}: {' + '.join(r['model'] for r in records)} -> {MODEL_DIR}/, {TRAIN_METRICS}")


def _csv(df: pd.DataFrame, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _finite(d: dict) -> dict:
    """JSON has no NaN: an undefined metric is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def tune_thresholds(params: dict) -> None:
    from . import metrics as M
    from . import thresholds as T
    from .ensemble import average, fit_weights
    from .inference import EmotionClassifier
    from .models import weights_hash

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    dev = splits["dev"]
    # evaluate's device and precision: the thresholds fit the probabilities evaluate will see
    clf = EmotionClassifier.load(MODEL_DIR, "fixed", precision=params["evaluate"]["precision"],
                                 device=params["evaluate"]["device"])
    y = data.label_matrix(dev)
    member_probs = clf.member_probas(dev["text"], progress=True)
    weights = fit_weights(member_probs, y) if len(member_probs) > 1 else None  # an ensemble's, on dev
    probs = member_probs[0] if weights is None else average(member_probs, weights)
    thr_params = params["thresholds"]
    res = T.tune(y, probs, thr_params["metric"], thr_params["min_positives"])
    write_json(f"{MODEL_DIR}/thresholds.json", {
        "weights_sha256": weights_hash(MODEL_DIR),
        "tuned_on": "dev",
        "metric": thr_params["metric"],
        "min_positives": thr_params["min_positives"],
        "labels": names,
        "global_threshold": res["global_threshold"],
        "fallback_labels": [names[i] for i in res["fallback_labels"]],
        "strategies": res["strategies"],
        **({"member_weights": [float(w) for w in weights]} if weights is not None else {}),
    })
    m = {"global_threshold": res["global_threshold"]}
    for s in ("global", "per_label"):  # fixed 0.5 is train.json's dev F1
        pred = T.apply(probs, res["strategies"][s])
        m[f"{s}_dev_micro_f1"] = M.micro_f1(y, pred)
        m[f"{s}_dev_macro_f1"] = M.macro_f1(y, pred)
    if weights is not None:  # how much the ensemble adds over its best model (thresholds tuned alike)
        alone = [M.macro_f1(y, T.apply(p, T.tune(y, p, thr_params["metric"], thr_params["min_positives"])
                                        ["strategies"]["per_label"])) for p in member_probs]
        m["best_single_model_dev_macro_f1"] = max(alone)
    write_json(THRESHOLDS_METRICS, m)
    c = res["curves"]
    _csv(pd.DataFrame({"threshold": T.GRID, "micro_f1": c["micro_f1"], "macro_f1": c["macro_f1"]}),
         f"{THRESHOLDS_PLOTS}/f1_vs_threshold.csv")
    print(f"tuned on dev: global {res['global_threshold']:.2f}; dev macro F1 global {m['global_dev_macro_f1']:.4f}, "
          f"per-label {m['per_label_dev_macro_f1']:.4f}")


ERROR_HEATMAPS = {
    "counts": ("examples with true label i and a false positive j", ".0f"),
    "conditional": ("P(false positive j | true label i)", ".2f"),
    "jaccard": ("Jaccard(true i, false positive j)", ".2f"),
}
WITH_INTERVAL = ("micro_f1", "macro_f1", "roc_auc_macro")  # test figures given a bootstrap interval
TEST_FIGURES = ("micro_precision", "micro_recall", "hamming_loss", "subset_accuracy", "average_precision_macro",
                "expected_calibration_error")  # the rest of eval.json's test figures; all of them: all_scores.json
MAIN_FIGURES = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss", "roc_auc_macro")


def _curve(x, y, n=300) -> tuple[np.ndarray, np.ndarray]:
    keep = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).astype(int))
    return x[keep], y[keep]


def resample_counts(params: dict, n: int) -> np.ndarray:
    """evaluate's bootstrap resamples of n test examples: the same for every system (paired)."""
    from .bootstrap import resample_counts as counts

    return counts(n, params["evaluate"]["bootstrap_resamples"], params["evaluate"]["bootstrap_seed"])


def evaluate(params: dict) -> None:
    """The one place the test split is scored; every choice was made on dev before."""
    from . import bootstrap
    from . import metrics as M
    from . import thresholds as T
    from .inference import EmotionClassifier

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    eval_params = params["evaluate"]
    clf = EmotionClassifier.load(MODEL_DIR, strategy=eval_params["thresholds"], require_thresholds=True,
                                 precision=eval_params["precision"], device=eval_params["device"])
    dev_y, dev_probs = data.label_matrix(splits["dev"]), clf.predict_proba(splits["dev"]["text"], progress=True)
    dev_scores, _ = M.evaluate(dev_y, dev_probs, T.apply(dev_probs, clf.thresholds))
    t0 = time.perf_counter()
    y, probs = data.label_matrix(splits["test"]), clf.predict_proba(splits["test"]["text"], progress=True)
    speed = len(y) / (time.perf_counter() - t0)
    pred = T.apply(probs, clf.thresholds)
    scores, per_label = M.evaluate(y, probs, pred)
    resampled = bootstrap.samples(y, probs, pred, resample_counts(params, len(y)))
    level = eval_params["ci_level"]
    out = {}
    for k in WITH_INTERVAL:
        lo, hi = bootstrap.interval(resampled[k], level)
        out |= {f"test_{k}": scores[k], f"test_{k}_lo": float(lo), f"test_{k}_hi": float(hi)}
    out |= {f"test_{k}": scores[k] for k in TEST_FIGURES}
    out |= {"dev_micro_f1": dev_scores["micro_f1"], "dev_macro_f1": dev_scores["macro_f1"]}
    write_json(EVAL_METRICS, _finite(out))
    every_score = {**{f"test_{k}": v for k, v in scores.items()}, **{f"dev_{k}": v for k, v in dev_scores.items()}}
    write_json(f"{EVAL_PLOTS}/all_scores.json", _finite({"ci_level": level, **out, **every_score}))
    # Apart from eval.json: a wall-clock speed differs run to run, the seeded scores do not.
    write_json(INFERENCE_METRICS, {"inference_sentences_per_s": round(speed, 1),
                                          **{f"inference_{k}": v for k, v in clf.describe().items()}})
    Path(TEST_PREDICTIONS).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(TEST_PREDICTIONS) as tmp:
        np.savez_compressed(tmp, probs=probs, pred=pred)
    f1_lo, f1_hi = bootstrap.interval(resampled["per_label_f1"], level)
    table = pd.DataFrame({"label": names, "support": per_label["support"], "threshold": clf.thresholds,
                          **{k: per_label[k] for k in ("precision", "recall", "f1")}, "f1_lo": f1_lo, "f1_hi": f1_hi,
                          **{k: per_label[k] for k in ("tp", "fp", "fn", "tn", "auc")}})
    _csv(table.round(4), PER_LABEL)
    _test_plots(y, probs, pred, per_label, clf.config["name"], eval_params["thresholds"], scores, names)
    ci = lambda k: f"[{out[f'test_{k}_lo']:.4f}, {out[f'test_{k}_hi']:.4f}]"  # noqa: E731
    print(f"test ({eval_params['thresholds']} thresholds): micro F1 {out['test_micro_f1']:.4f} {ci('micro_f1')}, "
          f"macro F1 {out['test_macro_f1']:.4f} {ci('macro_f1')} ({level:.0%} bootstrap intervals) | "
          f"dev micro F1 {out['dev_micro_f1']:.4f}, macro F1 {out['dev_macro_f1']:.4f}")


def _test_plots(y, probs, pred, per_label, model: str, strategy: str, scores: dict, names: list[str]) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    from . import metrics as M
    from . import plots

    prec, rec, _ = precision_recall_curve(y.ravel(), probs.ravel())
    rec, prec = _curve(rec, prec)
    _csv(pd.DataFrame({"recall": rec, "precision": prec}).round(5), f"{EVAL_PLOTS}/precision_recall.csv")
    fpr, tpr, _ = roc_curve(y.ravel(), probs.ravel())
    fpr, tpr = _curve(fpr, tpr)
    _csv(pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(5), f"{EVAL_PLOTS}/roc.csv")
    plots.confusion_grid(per_label, names, f"{EVAL_PLOTS}/confusion_matrices.png",
                         f"{model}: per-label confusion on test ({strategy} thresholds)")
    errors = M.error_cooccurrence(y, pred)
    for kind, (title, fmt) in ERROR_HEATMAPS.items():
        plots.heatmap(errors[kind], names, f"{EVAL_PLOTS}/error_cooccurrence_{kind}.png",
                      f"{model} on test: {title}", fmt, xlabel="wrongly predicted label j",
                      ylabel="true label i", mask_diagonal=False)
    plots.reliability(M.calibration_bins(y, probs), f"{EVAL_PLOTS}/reliability.png",
                      f"{model}: reliability on test (ECE {scores['expected_calibration_error']:.4f})")


SCORED = ("micro_f1", "macro_f1")  # what compare sets beside the baseline and the references


def paired_with_baseline(params: dict, y: np.ndarray, model_pred: np.ndarray, base_pred: np.ndarray) -> dict:
    """Model minus baseline test F1 over evaluate's resamples: difference, its interval, a p-value."""
    from . import bootstrap
    from . import metrics as M

    counts = resample_counts(params, len(y))
    model, base = bootstrap.f1_samples(y, model_pred, counts), bootstrap.f1_samples(y, base_pred, counts)
    out = {}
    for k in SCORED:
        score = getattr(M, k)
        diff = bootstrap.paired(model[k], base[k], params["evaluate"]["ci_level"])
        key = f"model_minus_baseline_{k}"
        out |= {key: score(y, model_pred) - score(y, base_pred), f"{key}_lo": diff["lo"], f"{key}_hi": diff["hi"],
                f"{key}_p_value": diff["p_value"]}
    return out


def model_description() -> str:
    """The architecture, or an ensemble's architectures with their weights (read without importing the model
    code: compare depends on none of it)."""
    members = sorted(Path(MEMBERS_DIR).glob("*/config.json"), key=lambda f: int(f.parent.name))
    names = [read_json(f)["name"] for f in (Path(MODEL_DIR, "config.json"), *members)]
    if len(names) == 1:
        return names[0]
    weights = read_json(Path(MODEL_DIR, "thresholds.json"))["member_weights"]
    return "ensemble (weights fitted on dev): " + " + ".join(f"{w:.2f} {n}" for n, w in zip(names, weights))


def compare(params: dict) -> None:
    """This experiment's model beside the TF-IDF baseline (trained here, thresholds tuned on dev the
    same way, paired bootstrap on test) and the published references, in metrics/compare.json and
    reports/compare.md."""
    import yaml

    from . import metrics as M
    from . import thresholds as T
    from .baseline import fit_predict

    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    compare_params, thr_params = params["compare"], params["thresholds"]
    strategy = params["evaluate"]["thresholds"]
    y = {s: data.label_matrix(df) for s, df in splits.items()}
    probs = fit_predict(splits["train"]["text"], y["train"], {s: splits[s]["text"] for s in ("dev", "test")},
                        max_features=compare_params["tfidf_max_features"],
                        ngram_max=compare_params["tfidf_ngram_max"], C=compare_params["C"], seed=params["seed"])
    base_th = T.tune(y["dev"], probs["dev"], thr_params["metric"], thr_params["min_positives"])["strategies"][strategy]
    base_pred = T.apply(probs["test"], base_th)
    base, base_per_label = M.evaluate(y["test"], probs["test"], base_pred)

    model_name = read_json(f"{MODEL_DIR}/config.json")["name"]  # an ensemble's first: whose reference row applies
    described = model_description()
    series = model_name if described == model_name else "ensemble"
    ev = read_json(EVAL_METRICS)
    model = {k: ev[f"test_{k}"] for k in MAIN_FIGURES}
    model_f1 = pd.read_csv(PER_LABEL)["f1"].to_numpy()
    references = yaml.safe_load(Path("reference/results.yaml").read_text())
    ref = references["reference_project"].get(model_name, {})  # none for an architecture of our own

    out = {f"baseline_{k}": base[k] for k in SCORED}
    out |= paired_with_baseline(params, y["test"], np.load(TEST_PREDICTIONS)["pred"], base_pred)
    out |= {f"reference_{k}": ref[k] for k in SCORED if k in ref}
    out |= {f"model_minus_reference_{k}": model[k] - ref[k] for k in SCORED if k in ref}
    write_json(COMPARE_METRICS, _finite(out))
    _csv(pd.DataFrame([(n, s, round(float(f), 4)) for s, f1s in ((series, model_f1),
                                                                  ("tfidf_logreg", base_per_label["f1"]))
                       for n, f in zip(names, f1s)], columns=["label", "series", "f1"]),
         f"{COMPARE_PLOTS}/per_label_f1.csv")
    rows = [(f"**{described}** (this experiment)", model),
            ("TF-IDF + logistic regression (trained in this stage)", base)]
    rows += [(f"reference project, {model_name}", ref)] if ref else []
    rows += [(f"reference project, {a}", r) for a, r in references["reference_project"].items() if a != model_name]
    rows.append(("GoEmotions paper, BERT-base", references["goemotions_paper"]["bert_base"]))
    lines = compare_markdown(described, strategy, rows, ev, out, params["evaluate"])
    lines += ["", "## Per-label F1: model vs baseline", "", f"| label | {series} | tfidf_logreg | difference |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {n} | {a:.3f} | {b:.3f} | {a - b:+.3f} |" for n, a, b in zip(names, model_f1, base_per_label["f1"])]
    with atomic_path(COMPARE_REPORT) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"compare: {series} test macro F1 {model['macro_f1']:.4f} vs baseline {base['macro_f1']:.4f}: "
          f"{out['model_minus_baseline_macro_f1']:+.4f} [{out['model_minus_baseline_macro_f1_lo']:+.4f}, "
          f"{out['model_minus_baseline_macro_f1_hi']:+.4f}], p = {out['model_minus_baseline_macro_f1_p_value']:.4f}"
          " -> reports/compare.md")


def _cell(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def compare_markdown(model_name: str, strategy: str, rows: list, ev: dict, out: dict, eval_params: dict) -> list[str]:
    cols = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "hamming_loss")
    level = f"{eval_params['ci_level']:.0%}"
    lines = [
        "# Comparison on the GoEmotions test split",
        "",
        f"Model: `{model_name}`; thresholds: `{strategy}` (tuned on dev for the model and the baseline alike).",
        "Generated by `dvc repro compare` (`emotion-compare`); reference figures from `reference/results.yaml`.",
        "",
        "| system | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
        "| --- |" + " ---: |" * len(cols),
    ]
    lines += [f"| {name} | " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for name, r in rows]
    lines += ["", f"## How sure: {level} bootstrap intervals ({eval_params['bootstrap_resamples']} resamples of the "
              f"test examples, seed {eval_params['bootstrap_seed']})", "",
              "| figure | value | interval |", "| --- | ---: | --- |"]
    lines += [f"| model test {k.replace('_', ' ')} | {ev[f'test_{k}']:.4f} | [{_cell(ev.get(f'test_{k}_lo'))}, "
              f"{_cell(ev.get(f'test_{k}_hi'))}] |" for k in WITH_INTERVAL]
    for k in SCORED:
        key = f"model_minus_baseline_{k}"
        lines.append(f"| model minus baseline, {k.replace('_', ' ')} (paired; p = {out[f'{key}_p_value']:.4f}) | "
                     f"{out[key]:+.4f} | [{out[f'{key}_lo']:+.4f}, {out[f'{key}_hi']:+.4f}] |")
    lines += ["", "Paired: the model and the baseline are scored on the same resamples, so the interval of the "
              "difference leaves out the luck of the test draw that both share. p: two-sided, for no difference."]
    return lines
