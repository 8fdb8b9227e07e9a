"""Console scripts (`emotion-*`) and the DVC stage entry points share these mains."""

from __future__ import annotations

import argparse
import sys

from .data import DataError
from .params import ParamsError, load_params


def _run(stage: str, description: str, argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"emotion-{stage.replace('_', '-')}", description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    from . import pipeline

    try:
        params = load_params(args.params)
        getattr(pipeline, stage)(params)
    except (DataError, ParamsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def prepare_main(argv=None) -> None:
    sys.exit(_run("prepare", "Validate raw GoEmotions and write data/prepared/.", argv))


def analyze_main(argv=None) -> None:
    sys.exit(_run("analyze_dataset", "Dataset statistics, label distribution and co-occurrence heatmaps.", argv))
