"""Stage prepare: raw GoEmotions, validated, to data/prepared/ (a seeded subset when data.max_examples > 0)."""

from __future__ import annotations

from pathlib import Path

from .. import data
from ..params import Params


def run(params: Params, root: Path = Path()) -> None:
    data_params = params.data
    counts = data.prepare(root / data_params.raw_dir, root / data_params.prepared_dir,
                          max_examples=data_params.max_examples, subset_seed=params.prepare.subset_seed)
    print("prepared " + ", ".join(f"{s}: {n}" for s, n in counts.items()) + f" -> {data_params.prepared_dir}")
