"""Console scripts (`emotion-*`) and the DVC stage entry points share these mains."""

from __future__ import annotations

import argparse
import sys

from .errors import UserError
from .params import load_params

STAGES = {
    "prepare": "Validate raw GoEmotions and write data/prepared/.",
    "analyze_dataset": "Dataset statistics, label distribution and co-occurrence heatmaps.",
    "train": "Train the architecture named by model.name; resumes an interrupted run.",
    "tune_thresholds": "Tune decision thresholds on dev for the model in models/.",
    "evaluate": "Score the model on the test split with its tuned thresholds.",
    "compare": "The model beside a TF-IDF baseline and the published references.",
}


def run(stage: str, argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"emotion-{stage.replace('_', '-')}", description=STAGES[stage])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    from . import pipeline

    try:
        params = load_params(args.params)
        getattr(pipeline, stage)(params)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


PARAMS_CHECKED = "data/params_checked"


def check_params_main(argv=None) -> None:
    """Validate params.yaml and (re)write a file whose content never changes: every stage depends on it,
    so DVC runs this first, and a rejected param stops `dvc repro` before it deletes any good output."""
    parser = argparse.ArgumentParser(prog="emotion-check-params", description=check_params_main.__doc__)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        load_params(args.params)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    from .io import atomic_path

    with atomic_path(PARAMS_CHECKED) as tmp:
        tmp.write_text("params.yaml passed emotion_classifier.params validation\n")


def _main(stage: str):
    def main(argv=None) -> None:
        sys.exit(run(stage, argv))

    main.__doc__ = STAGES[stage]
    return main


prepare_main = _main("prepare")
analyze_main = _main("analyze_dataset")
train_main = _main("train")
tune_thresholds_main = _main("tune_thresholds")
evaluate_main = _main("evaluate")
compare_main = _main("compare")


if __name__ == "__main__":  # python -m emotion_classifier.cli STAGE [--params FILE]: what torchrun launches
    sys.exit(run(sys.argv[1], sys.argv[2:]))
