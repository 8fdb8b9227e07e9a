"""Minority-label augmentation of the training split: label-union concatenation.

Neither encoder ships a masked-LM head, so contextual substitution (Ahanin et al. 2024) cannot be had offline. This
gives a rare label new contexts instead: each label with fewer than `to` training examples gets new ones until it
has about `to`, each a random example holding it followed by a random partner comment, labelled with the union of
both label sets. The rare comment comes first and whole, and the pair is kept short, so truncation at
`model.max_length` never cuts what carries its label; partners never carry `neutral` (a comment holding an emotion is
not neutral). Dev and test are never touched: every choice is still judged on real comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .data import multi_hot

NEUTRAL = "neutral"
MAX_WORDS = 40  # a pair this short fits 64 word pieces with room to spare (GoEmotions: ~1.3 pieces a word)


def concatenations(train: pd.DataFrame, names: list[str], to: int, seed: int,
                   max_words: int = MAX_WORDS) -> pd.DataFrame:
    """New rows (id, text, label_ids, labels) for every label with fewer than `to` examples in `train`; none when
    `to` is 0. Counts are taken before any is added, so a partner's label may pass `to` by a few."""
    has = np.stack(train["labels"].to_numpy()).astype(bool)
    counts = has.sum(axis=0)
    rare = [i for i in np.argsort(counts, kind="stable") if 0 < counts[i] < to]
    if not rare:
        return train.iloc[:0]
    rng = np.random.default_rng(seed)
    words = train["text"].str.split().str.len().to_numpy()
    partners = np.flatnonzero(~has[:, names.index(NEUTRAL)] if NEUTRAL in names else np.ones(len(train), bool))
    shortest = words[partners].min() if len(partners) else max_words
    pairs = []
    for label in rare:
        sources = np.flatnonzero(has[:, label] & (words <= max_words - shortest))
        if not len(sources):
            continue
        for source in rng.choice(sources, size=to - counts[label]):
            fits = partners[(words[partners] <= max_words - words[source]) & (partners != source)]
            pairs.append((source, rng.choice(fits)))
    first, second = (train.iloc[[pair[i] for pair in pairs]].reset_index(drop=True) for i in (0, 1))
    label_ids = [np.union1d(a, b).astype(a.dtype) for a, b in zip(first["label_ids"], second["label_ids"])]
    # the id names both sources, so a row is traceable and content_hash sees what was joined
    return pd.DataFrame({"id": [f"aug{n}:{a}+{b}" for n, (a, b) in enumerate(zip(first["id"], second["id"]))],
                         "text": first["text"] + " " + second["text"], "label_ids": label_ids,
                         "labels": list(multi_hot(label_ids, len(names)).astype(np.int8))})


def augment_train(prepared_dir: str | Path, names: list[str], to: int, seed: int) -> int:
    """Append `concatenations` to prepared_dir/train.parquet (a directory not yet swapped in: see stages.prepare);
    the number of rows added."""
    path = Path(prepared_dir) / "train.parquet"
    train = pd.read_parquet(path)
    added = concatenations(train, names, to, seed)
    if len(added):
        pd.concat([train, added], ignore_index=True).to_parquet(path, index=False)
    return len(added)
