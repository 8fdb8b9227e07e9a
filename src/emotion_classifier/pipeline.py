"""One function per DVC stage: read params, call the library, write the stage's outputs.

Called by `stages/*.py` (what dvc.yaml runs) and by the `emotion-*` console scripts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import analysis, data, plots, text
from .io import atomic_path, write_json

HEATMAPS = {
    "counts": ("Label co-occurrence in train (examples carrying both i and j)", ".0f"),
    "conditional": ("P(j | i) in train: share of examples with label i that also carry j", ".2f"),
    "jaccard": ("Jaccard(i, j) in train: both / either", ".2f"),
}


def prepare(params: dict) -> None:
    counts = data.prepare(
        params["data"]["raw_dir"],
        params["data"]["prepared_dir"],
        max_examples=params["data"]["max_examples"],
        subset_seed=params["prepare"]["subset_seed"],
    )
    print("prepared " + ", ".join(f"{s}: {n}" for s, n in counts.items()) + f" -> {params['data']['prepared_dir']}")


def analyze_dataset(params: dict, metrics_path="metrics/dataset.json", plots_dir="plots/dataset") -> None:
    splits, names = data.load_prepared(params["data"]["prepared_dir"])
    tok = text.load_tokenizer(params["model"]["encoder"])
    max_len = params["analyze_dataset"]["max_length"]
    lengths = {s: np.array([len(ids) for ids in text.tokenize(tok, df["text"], max_len)]) for s, df in splits.items()}
    metrics, dist, co = analysis.analyze(splits, names, lengths)
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(plots_dir / "label_distribution.csv") as tmp:
        dist.to_csv(tmp, index=False)
    for kind, (title, fmt) in HEATMAPS.items():
        plots.heatmap(co[kind], names, plots_dir / f"cooccurrence_{kind}.png", title, fmt)
    write_json(metrics_path, metrics)
    print(f"analyzed {', '.join(f'{s}: {len(df)}' for s, df in splits.items())} -> {metrics_path}, {plots_dir}/")
