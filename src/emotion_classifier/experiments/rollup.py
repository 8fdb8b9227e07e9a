"""Roll-up or train directly? A 28-label model's dev probabilities rolled up to a coarser taxonomy (per group: the
max of its labels', or noisy-or), beside models trained on the coarse labels, on dev only, with the CV protocol of
reports/ensembles.md (per-label thresholds tuned on held-out folds of dev).

    python -m emotion_classifier.experiments.rollup models --taxonomy ekman [--direct DIR ...]

MODEL_DIR is a 28-label model (an ensemble with its tuned weights); each --direct DIR a model trained with
`data.taxonomy` set (its own labels must be the taxonomy's). Each direct model is also scored averaged with each
roll-up, the two weights fitted on dev's labels as an ensemble's members are."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, one_line_errors


def dev_table(model_dir: str | Path, taxonomy: str, prepared_dir: str | Path, direct: list[str] = (),
              policy=None) -> list[str]:
    """Markdown lines: CV macro and micro F1 on dev of each way to the taxonomy's labels."""
    from .. import data
    from .. import taxonomy as TX
    from ..ensemble import average, cross_validated_f1, fit_weights
    from ..inference import EmotionClassifier

    splits, names = data.load_prepared(prepared_dir)
    groups = TX.label_names(taxonomy)
    dev = splits["dev"]
    y = data.multi_hot(TX.map_label_ids(dev["label_ids"], names, taxonomy), len(groups))
    fine = EmotionClassifier.load(model_dir, "fixed", precision="fp32")
    if fine.labels != names:
        raise UserError(f"{model_dir}: a model of {len(fine.labels)} labels; roll-up starts from the prepared "
                        f"data's {len(names)} (prepare with data.taxonomy: goemotions)")
    probs = fine.predict_proba(list(dev["text"]), progress=True)
    rows = {f"{model_dir} rolled up ({how})": TX.roll_up(probs, names, taxonomy, how) for how in ("max", "noisy_or")}
    rolled = dict(rows)
    for d in direct:
        clf = EmotionClassifier.load(d, "fixed", precision="fp32")
        if clf.labels != groups:
            raise UserError(f"{d}: its labels are not the {taxonomy} taxonomy's ({', '.join(groups)})")
        rows[f"{d} (trained on {taxonomy})"] = own = clf.predict_proba(list(dev["text"]), progress=True)
        for name, up in rolled.items():  # both ways in one ensemble, weighted as tune_thresholds weighs members
            w = fit_weights([up, own], y)
            rows[f"{name} and {d}, weights {w[0]:.3f} / {w[1]:.3f}"] = average([up, own], w)
    metric, min_positives = (policy.metric, policy.min_positives) if policy else ("micro_f1", 5)
    lines = [f"| {taxonomy}: dev, CV protocol | CV macro F1 | CV micro F1 |", "| --- | ---: | ---: |"]
    for name, p in rows.items():
        macro, micro = cross_validated_f1(y, p, metric, min_positives)
        lines.append(f"| {name} | {macro:.4f} | {micro:.4f} |")
    return lines


@one_line_errors
def main(argv=None) -> None:
    """Dev-only table: a 28-label model rolled up to a coarser taxonomy beside models trained on it."""
    import argparse

    from ..params import load_params
    from ..taxonomy import GROUPS

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.experiments.rollup", description=main.__doc__)
    ap.add_argument("model_dir", help="a 28-label model directory (main's: models)")
    ap.add_argument("--taxonomy", required=True, choices=list(GROUPS))
    ap.add_argument("--direct", nargs="*", default=[], help="model directories trained on the taxonomy's labels")
    ap.add_argument("--prepared-dir", default=None, help="28-label prepared data (default: data.prepared_dir)")
    args = ap.parse_args(argv)
    params = load_params()
    print("\n".join(dev_table(args.model_dir, args.taxonomy, args.prepared_dir or params.data.prepared_dir,
                              args.direct, params.policy)))


if __name__ == "__main__":
    main()
