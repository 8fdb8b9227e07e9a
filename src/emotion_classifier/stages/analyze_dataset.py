"""Stage analyze_dataset: statistics, the label distribution and co-occurrence heatmaps of the prepared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import analysis, data, plots
from ..encoder import load_tokenizer, tokenize
from ..files import write_csv, write_json
from ..params import Params
from ..paths import COOCCURRENCE, DATASET_METRICS, DATASET_PLOTS, DATASET_STATISTICS, LABEL_DISTRIBUTION

HEATMAPS = {
    "counts": ("Label co-occurrence in train (examples carrying both i and j)", ".0f"),
    "conditional": ("P(j | i) in train: share of examples with label i that also carry j", ".2f"),
    "jaccard": ("Jaccard(i, j) in train: both / either", ".2f"),
}
SUMMARY = ("train.examples", "dev.examples", "test.examples", "train.token_length_p99")  # the DVC metrics


def run(params: Params, root: Path = Path()) -> None:
    """Every statistic goes to plots/dataset/statistics.json; a handful are DVC metrics, so that `dvc metrics show`
    and `dvc exp show` lead with the scores, not 84 label counts."""
    splits, names = data.load_prepared(root / params.data.prepared_dir)
    tok = load_tokenizer(params.model.encoder)
    max_len = params.analyze_dataset.max_length
    lengths = {s: np.array([len(ids) for ids in tokenize(tok, df["text"], max_len)]) for s, df in splits.items()}
    statistics, dist, co = analysis.analyze(splits, names, lengths)
    write_csv(dist, root / LABEL_DISTRIBUTION)
    for kind, (title, fmt) in HEATMAPS.items():
        plots.heatmap(co[kind], names, root / COOCCURRENCE[kind], title, fmt)
    write_json(root / DATASET_STATISTICS, statistics)
    write_json(root / DATASET_METRICS, {k: statistics[k] for k in SUMMARY})
    print(f"analyzed {', '.join(f'{s}: {len(df)}' for s, df in splits.items())} -> {DATASET_METRICS}, "
          f"{DATASET_PLOTS}/")
