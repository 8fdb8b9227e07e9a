"""Stage compare: this experiment's model beside the TF-IDF baseline (trained here, thresholds tuned on dev the same
way, paired bootstrap on test) and the published references, in metrics/compare.json and reports/compare.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import bootstrap, data
from .. import metrics as M
from .. import thresholds as T
from ..baseline import fit_predict
from ..figures import COMPARED, HEADLINE, SCORED, WITH_INTERVAL
from ..files import atomic_path, read_json, write_csv, write_json
from ..model_dir import CONFIG, THRESHOLDS, member_dirs
from ..params import EvaluateParams, Params
from ..paths import (
    COMPARE_METRICS,
    COMPARE_PER_LABEL,
    COMPARE_REPORT,
    EVAL_METRICS,
    MODEL_DIR,
    PER_LABEL,
    TEST_PREDICTIONS,
)

REFERENCES = "reference/results.yaml"


def run(params: Params, root: Path = Path()) -> None:
    splits, names = data.load_prepared(root / params.data.prepared_dir)
    policy = params.policy
    y = {s: data.label_matrix(df) for s, df in splits.items()}
    base_probs = baseline_probs(params, splits, y["train"])
    base_pred = T.apply(base_probs["test"], policy.thresholds(y["dev"], base_probs["dev"]))
    base, base_per_label = M.evaluate(y["test"], base_probs["test"], base_pred)

    model_name = read_json(root / MODEL_DIR / CONFIG)["name"]  # an ensemble's first: whose reference row applies
    described = model_description(root / MODEL_DIR)
    series = model_name if described == model_name else "ensemble"
    ev = read_json(root / EVAL_METRICS)
    model = {f.key: ev[f"test_{f.key}"] for f in HEADLINE}
    model_f1 = pd.read_csv(root / PER_LABEL)["f1"].to_numpy()
    taxonomy = params.data.taxonomy
    references = yaml.safe_load((root / REFERENCES).read_text())[taxonomy]  # only those of the model's own labels
    ref = references.get("reference_project", {}).get(model_name, {})  # none for an architecture of our own

    out = {f"baseline_{k}": base[k] for k in SCORED}
    out |= paired_with_baseline(params.evaluate, y["test"], np.load(root / TEST_PREDICTIONS)["pred"], base_pred)
    out |= {f"reference_{k}": ref[k] for k in SCORED if k in ref}
    out |= {f"model_minus_reference_{k}": model[k] - ref[k] for k in SCORED if k in ref}
    write_json(root / COMPARE_METRICS, out)
    write_csv(pd.DataFrame([(n, s, round(float(f), 4)) for s, f1s in ((series, model_f1),
                                                                       ("tfidf_logreg", base_per_label["f1"]))
                            for n, f in zip(names, f1s)], columns=["label", "series", "f1"]),
              root / COMPARE_PER_LABEL)
    rows = [(f"**{described}** (this experiment)", model),
            ("TF-IDF + logistic regression (trained in this stage)", base)]
    rows += [(f"reference project, {model_name}", ref)] if ref else []
    rows += [(f"reference project, {a}", r) for a, r in references.get("reference_project", {}).items()
             if a != model_name]
    rows += [(r.get("name", f"{source}, {system}"), r) for source, systems in references.items()
             if source != "reference_project" for system, r in systems.items()]
    lines = markdown(described, policy.strategy, rows, ev, out, params.evaluate, taxonomy)
    lines += ["", "## Per-label F1: model vs baseline", "", f"| label | {series} | tfidf_logreg | difference |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {n} | {a:.3f} | {b:.3f} | {a - b:+.3f} |" for n, a, b in zip(names, model_f1, base_per_label["f1"])]
    with atomic_path(root / COMPARE_REPORT) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"compare: {series} test macro F1 {model['macro_f1']:.4f} vs baseline {base['macro_f1']:.4f}: "
          f"{out['model_minus_baseline_macro_f1']:+.4f} [{out['model_minus_baseline_macro_f1_lo']:+.4f}, "
          f"{out['model_minus_baseline_macro_f1_hi']:+.4f}], p = {out['model_minus_baseline_macro_f1_p_value']:.4f}"
          f" -> {COMPARE_REPORT}")


def baseline_probs(params: Params, splits: dict, y_train: np.ndarray) -> dict[str, np.ndarray]:
    """The TF-IDF + logistic regression baseline, trained on train, probabilities of dev and test."""
    compare_params = params.compare
    return fit_predict(splits["train"]["text"], y_train, {s: splits[s]["text"] for s in ("dev", "test")},
                       max_features=compare_params.tfidf_max_features, ngram_max=compare_params.tfidf_ngram_max,
                       C=compare_params.C, seed=params.seed)


def paired_with_baseline(eval_params: EvaluateParams, y: np.ndarray, model_pred: np.ndarray,
                         base_pred: np.ndarray) -> dict:
    """Model minus baseline test F1 over evaluate's resamples: difference, its interval, a p-value."""
    counts = bootstrap.test_resamples(len(y), eval_params)
    model, base = bootstrap.f1_samples(y, model_pred, counts), bootstrap.f1_samples(y, base_pred, counts)
    out = {}
    for k in SCORED:
        score = getattr(M, k)
        diff = bootstrap.paired(model[k], base[k], eval_params.ci_level)
        key = f"model_minus_baseline_{k}"
        out |= {key: score(y, model_pred) - score(y, base_pred), f"{key}_lo": diff["lo"], f"{key}_hi": diff["hi"],
                f"{key}_p_value": diff["p_value"]}
    return out


def model_description(model_dir: Path) -> str:
    """The architecture, or an ensemble's architectures with their weights (read without importing the model
    code: compare depends on none of it)."""
    names = [read_json(Path(d, CONFIG))["name"] for d in (model_dir, *member_dirs(model_dir))]
    if len(names) == 1:
        return names[0]
    weights = read_json(model_dir / THRESHOLDS)["member_weights"]
    return "ensemble (weights fitted on dev): " + " + ".join(f"{w:.2f} {n}" for n, w in zip(names, weights))


def _cell(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"


def markdown(model_name: str, strategy: str, rows: list, ev: dict, out: dict,
             eval_params: EvaluateParams, taxonomy: str = "goemotions") -> list[str]:
    level = f"{eval_params.ci_level:.0%}"
    lines = [
        "# Comparison on the GoEmotions test split"
        + ("" if taxonomy == "goemotions" else f", {taxonomy} taxonomy (references of the same labels only)"),
        "",
        f"Model: `{model_name}`; thresholds: `{strategy}` (tuned on dev for the model and the baseline alike).",
        "Generated by `dvc repro compare` (`emotion-compare`); reference figures from `reference/results.yaml`.",
        "",
        "| system | " + " | ".join(f.label for f in COMPARED) + " |",
        "| --- |" + " ---: |" * len(COMPARED),
    ]
    lines += [f"| {name} | " + " | ".join(_cell(r.get(f.key)) for f in COMPARED) + " |" for name, r in rows]
    lines += ["", f"## How sure: {level} bootstrap intervals ({eval_params.bootstrap_resamples} resamples of the "
              f"test examples, seed {eval_params.bootstrap_seed})", "",
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
