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
    except Exception as e:
        if (lost := lost_peer(e)) is None:
            raise
        print(f"error: {lost}", file=sys.stderr)
        return 1
    return 0


PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "timed out", "Timed out")


def lost_peer(e: BaseException) -> str | None:
    """A data-parallel run whose peer died or hung (a killed node, a lost network): one line instead of a traceback
    from inside torch.distributed; None for any other error."""
    import os

    if "WORLD_SIZE" not in os.environ:
        return None
    import torch.distributed as dist

    if not isinstance(e, getattr(dist, "DistError", ())) and not any(s in str(e) for s in PEER_GONE):
        return None
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return (f"rank {os.environ.get('RANK', '?')}: a peer of this data-parallel run is gone ({first[:160]}); the run "
            "stops. Run the same command again on every node: it resumes from the last finished epoch's checkpoint")


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
