"""python -m emotion_classifier.experiments.teach MODEL_DIR teachers/F.npz: a model's (an ensemble's, weighted as
tuned) probabilities on the training split, the targets `train.teacher: F.npz` distils (see distill.py).
Kept apart from distill.py, which `train` imports: writing a teacher runs inference, training does not."""

from __future__ import annotations

from pathlib import Path

from ..errors import one_line_errors
from ..paths import TEACHERS_DIR


def write_teacher(model_dir: str | Path, out: str | Path, prepared_dir: str | Path) -> Path:
    from .. import data
    from ..inference import EmotionClassifier
    from ..training.distill import save_teacher

    clf = EmotionClassifier.load(model_dir, "fixed", precision="fp32")  # an ensemble: with its tuned weights
    splits, _ = data.load_prepared(prepared_dir)
    save_teacher(out, splits["train"], clf.predict_proba(splits["train"]["text"], progress=True))
    return Path(out)


@one_line_errors
def main(argv=None) -> None:
    """Write a teacher file for train.teacher: MODEL_DIR's probabilities on the training split."""
    import argparse

    from ..params import load_params

    ap = argparse.ArgumentParser(prog="python -m emotion_classifier.experiments.teach", description=main.__doc__)
    ap.add_argument("model_dir", help="the teacher: a model or ensemble directory (tuned: its member weights)")
    ap.add_argument("out", help=f"the file to write, under {TEACHERS_DIR}/ for train.teacher")
    args = ap.parse_args(argv)
    path = write_teacher(args.model_dir, args.out, load_params().data.prepared_dir)
    print(f"teacher probabilities on the training split -> {path}")


if __name__ == "__main__":
    main()
