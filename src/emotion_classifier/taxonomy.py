"""The GoEmotions paper's three taxonomies: the 27 emotions + neutral as annotated, Ekman's six basic emotions +
neutral, and the sentiment groups + neutral. `data.taxonomy` picks one; prepare maps each example's labels to it
(multilabel: an example with joy and sadness emotions is both), and a 28-label model's probabilities roll up to it.

The tables are google-research's goemotions/data/ekman_mapping.json and sentiment_dict.json (Demszky et al. 2020);
neutral stays its own class in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GOEMOTIONS = "goemotions"
NEUTRAL = "neutral"
GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "ekman": {
        "anger": ("anger", "annoyance", "disapproval"),
        "disgust": ("disgust",),
        "fear": ("fear", "nervousness"),
        "joy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
                "admiration", "desire", "caring"),
        "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
        "surprise": ("surprise", "realization", "confusion", "curiosity"),
    },
    "sentiment": {
        "positive": ("amusement", "excitement", "joy", "love", "desire", "optimism", "caring", "pride", "admiration",
                     "gratitude", "relief", "approval"),
        "negative": ("fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness", "grief",
                     "disgust", "anger", "annoyance", "disapproval"),
        "ambiguous": ("realization", "surprise", "curiosity", "confusion"),
    },
}
TAXONOMIES = (GOEMOTIONS, *GROUPS)


def label_names(taxonomy: str) -> list[str]:
    """A coarse taxonomy's labels, in the paper's order, neutral last."""
    return [*GROUPS[taxonomy], NEUTRAL]


def group_index(names: list[str], taxonomy: str) -> np.ndarray:
    """For each of `names` (the 28 labels), the index of its group in label_names(taxonomy); a name no group holds
    is an error naming it (other data than GoEmotions' labels)."""
    groups = label_names(taxonomy)
    owner = {emotion: groups.index(group) for group, emotions in GROUPS[taxonomy].items() for emotion in emotions}
    owner[NEUTRAL] = groups.index(NEUTRAL)
    missing = [n for n in names if n not in owner]
    if missing:
        raise ValueError(f"data.taxonomy {taxonomy}: label(s) {', '.join(missing)} belong to no group")
    return np.array([owner[n] for n in names])


def map_label_ids(label_ids, names: list[str], taxonomy: str) -> list[list[int]]:
    """Each example's label ids (into `names`) as the ids of their groups, each once, in order."""
    index = group_index(names, taxonomy)
    return [sorted({int(index[i]) for i in ids}) for ids in label_ids]


def remap_prepared(prepared_dir: str | Path, taxonomy: str) -> None:
    """Rewrite prepared splits (written for the 28 labels) with the labels of `taxonomy`; the default leaves every
    byte as it is."""
    import pandas as pd

    from .data import SPLITS, multi_hot
    from .files import read_json, write_json

    if taxonomy == GOEMOTIONS:
        return
    prepared_dir = Path(prepared_dir)
    names, groups = read_json(prepared_dir / "labels.json"), label_names(taxonomy)
    for split in SPLITS:
        path = prepared_dir / f"{split}.parquet"
        df = pd.read_parquet(path)
        ids = map_label_ids(df["label_ids"], names, taxonomy)
        y = multi_hot(ids, len(groups)).astype(np.int8)
        out = pd.DataFrame({"id": df["id"], "text": df["text"], "label_ids": ids, "labels": list(y)})
        out.to_parquet(path, index=False)
    write_json(prepared_dir / "labels.json", groups)


def roll_up(probs: np.ndarray, names: list[str], taxonomy: str, how: str = "max") -> np.ndarray:
    """A 28-label model's probabilities as `taxonomy`'s: per group the max of its labels' (`max`), or the chance
    that at least one holds if they were independent (`noisy_or`: 1 - prod(1 - p))."""
    index = group_index(names, taxonomy)
    out = np.zeros((len(probs), len(label_names(taxonomy))), dtype=np.float64)
    for g in range(out.shape[1]):
        members = probs[:, index == g].astype(np.float64)
        if members.shape[1]:  # a group none of `names` belongs to stays 0
            out[:, g] = members.max(axis=1) if how == "max" else 1 - np.prod(1 - members, axis=1)
    return out
