"""Stage check_params: params.yaml was validated on loading; (re)write a file whose content never changes.

Every stage depends on it, so DVC runs this first and a rejected param stops `dvc repro` before DVC deletes any
good output; unchanged content reruns nothing."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_path
from ..params import Params
from ..paths import PARAMS_CHECKED


def run(params: Params, root: Path = Path()) -> None:
    with atomic_path(root / PARAMS_CHECKED) as tmp:
        tmp.write_text("params.yaml passed emotion_classifier.params validation\n")
