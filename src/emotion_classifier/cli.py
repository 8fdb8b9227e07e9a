"""Console scripts (`emotion-*`) and the DVC stage entry points share these mains."""

from __future__ import annotations

import argparse
import sys

from .data import DataError
from .inference import ThresholdsError
from .models import ModelDirError
from .params import ParamsError, load_params


def _run(stage: str, description: str, argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"emotion-{stage.replace('_', '-')}", description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    from . import pipeline

    try:
        params = load_params(args.params)
        getattr(pipeline, stage)(params)
    except (DataError, ParamsError, ModelDirError, ThresholdsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def prepare_main(argv=None) -> None:
    sys.exit(_run("prepare", "Validate raw GoEmotions and write data/prepared/.", argv))


def analyze_main(argv=None) -> None:
    sys.exit(_run("analyze_dataset", "Dataset statistics, label distribution and co-occurrence heatmaps.", argv))


def train_main(argv=None) -> None:
    sys.exit(_run("train", "Train the architecture named by model.name; resumes an interrupted run.", argv))


def tune_thresholds_main(argv=None) -> None:
    sys.exit(_run("tune_thresholds", "Tune decision thresholds on dev for the model in models/.", argv))


def evaluate_main(argv=None) -> None:
    sys.exit(_run("evaluate", "Score the model on the test split with its tuned thresholds.", argv))


def compare_main(argv=None) -> None:
    sys.exit(_run("compare", "The model beside a TF-IDF baseline and the published references.", argv))
