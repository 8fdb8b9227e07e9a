"""Console scripts (`emotion-*`) and the DVC stage entry points share these mains."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError
from .params import load_params

STAGES = {
    "check_params": "Validate params.yaml (every stage depends on it: DVC runs it first).",
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
    try:
        params = load_params(args.params)
        importlib.import_module(f"{__package__}.stages.{stage}").run(params)  # that stage's code only
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


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


def check_params_main(argv=None) -> None:
    """Exits only on a rejected param (a DVC stage's command, also called from tests)."""
    if code := run("check_params", argv):
        sys.exit(code)


if __name__ == "__main__":  # python -m emotion_classifier.cli STAGE [--params FILE]: what torchrun launches
    sys.exit(run(sys.argv[1], sys.argv[2:]))
