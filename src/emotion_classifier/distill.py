"""Distillation: a model trained on a teacher's probabilities as well as the labels.

The teacher (typically the ensemble in `models/`) scores the training split once:
`python -m emotion_classifier.distill models teachers/ensemble.npz`. With `train.teacher: ensemble.npz`
the next `train` fits each example towards (1 - distill_weight) * labels + distill_weight * teacher
(data.training_targets), so one model may learn what the ensemble knows and serve at one model's speed.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .paths import TEACHERS_DIR


def write_teacher(model_dir: str | Path, out: str | Path, prepared_dir: str | Path) -> Path:
    """The model's (an ensemble's: weighted as tuned) probabilities on the training split, with its ids."""
    from . import data
    from .inference import EmotionClassifier

    splits, _ = data.load_prepared(prepared_dir)
    clf = EmotionClassifier.load(model_dir, "fixed", precision="fp32")
    data.save_teacher(out, splits["train"], clf.predict_proba(splits["train"]["text"], progress=True))
    return Path(out)


def main(argv=None) -> None:
    """python -m emotion_classifier.distill MODEL_DIR OUT: write a teacher file for `train.teacher`."""
    import argparse
    import sys

    from .params import load_params

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.distill", description=main.__doc__)
    ap.add_argument("model_dir", help="the teacher: a model or ensemble directory (tuned: its member weights)")
    ap.add_argument("out", help=f"the file to write, under {TEACHERS_DIR}/ for train.teacher")
    args = ap.parse_args(argv)
    try:
        path = write_teacher(args.model_dir, args.out, load_params()["data"]["prepared_dir"])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"teacher probabilities on the training split -> {path}")


if __name__ == "__main__":
    main()
