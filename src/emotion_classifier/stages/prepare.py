"""Stage prepare: raw GoEmotions, validated, to data/prepared/ (a seeded subset when data.max_examples > 0), its
labels those of data.taxonomy, with the training split's minority labels augmented when prepare.augment_to > 0."""

from __future__ import annotations

from pathlib import Path

from .. import augment, data, taxonomy
from ..files import atomic_dir, read_json
from ..params import Params


def run(params: Params, root: Path = Path()) -> None:
    data_params, prepare_params = params.data, params.prepare
    # augmented inside the directory before it is swapped in: bad input or a failure leaves the old one whole
    with atomic_dir(root / data_params.prepared_dir) as tmp:
        counts = data.prepare(root / data_params.raw_dir, tmp, max_examples=data_params.max_examples,
                              subset_seed=prepare_params.subset_seed)
        taxonomy.remap_prepared(tmp, data_params.taxonomy)
        added = augment.augment_train(tmp, read_json(tmp / "labels.json"), prepare_params.augment_to,
                                      prepare_params.augment_seed)
    print("prepared " + ", ".join(f"{s}: {n}" for s, n in counts.items()) + f" -> {data_params.prepared_dir}"
          + (f", labels of the {data_params.taxonomy} taxonomy" if data_params.taxonomy != taxonomy.GOEMOTIONS else "")
          + (f" (train + {added} label-union concatenations for labels under {prepare_params.augment_to})"
             if added else ""))
