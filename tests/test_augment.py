import numpy as np
import pandas as pd
import pytest

from emotion_classifier.augment import concatenations
from emotion_classifier.data import load_prepared, prepare

from .conftest import TINY_LABELS


@pytest.fixture(scope="module")
def train(tiny_prepared):
    return load_prepared(tiny_prepared)[0]["train"]


def counts(df: pd.DataFrame) -> np.ndarray:
    return np.stack(df["labels"].to_numpy()).sum(axis=0)


def test_rare_labels_get_label_union_concatenations_up_to_the_target(train):
    before = counts(train)
    to = int(sorted(before)[1]) + 5  # the two rarer labels are under it, the commonest is not
    added = concatenations(train, TINY_LABELS, to, seed=0)
    rare = [i for i, n in enumerate(before) if n < to]
    assert len(added) == sum(to - before[i] for i in rare) and len(rare) == 2
    assert (counts(pd.concat([train, added])) >= min(to, *before)).all()
    by_id = train.set_index("id")
    neutral = TINY_LABELS.index("neutral")
    for row in added.itertuples():
        first, second = row.id.split(":", 1)[1].split("+")
        a, b = by_id.loc[first], by_id.loc[second]
        assert row.text == f"{a.text} {b.text}"  # the rare comment first and whole
        assert set(row.label_ids) == set(a.label_ids) | set(b.label_ids)
        assert list(row.labels) == [int(i in set(row.label_ids)) for i in range(len(TINY_LABELS))]
        assert b.labels[neutral] == 0 and first != second
        assert any(a.labels[i] for i in rare)
        assert len(row.text.split()) <= 40
    assert added["id"].is_unique and not set(added["id"]) & set(train["id"])


def test_concatenations_are_seeded_and_off_at_zero(train):
    one, again = concatenations(train, TINY_LABELS, 60, seed=0), concatenations(train, TINY_LABELS, 60, seed=0)
    pd.testing.assert_frame_equal(one, again)
    assert not concatenations(train, TINY_LABELS, 60, seed=1)["id"].equals(one["id"])
    assert concatenations(train, TINY_LABELS, 0, seed=0).empty
    assert concatenations(train, TINY_LABELS, 60, seed=0, max_words=1).empty  # no pair fits: nothing, no error


def test_the_prepare_stage_augments_train_only(tiny_raw, tmp_path):
    from emotion_classifier.params import with_overrides
    from emotion_classifier.stages import prepare as stage

    plain = tmp_path / "plain"
    prepare(tiny_raw, plain)
    params = with_overrides(None, {"data.raw_dir": str(tiny_raw), "data.prepared_dir": "prepared",
                                   "prepare.augment_to": 60, "model.name": "textcnn"})
    stage.run(params, tmp_path)
    splits, names = load_prepared(tmp_path / "prepared")
    base, _ = load_prepared(plain)
    for s in ("dev", "test"):
        pd.testing.assert_frame_equal(splits[s], base[s])
    n = len(base["train"])
    pd.testing.assert_frame_equal(splits["train"].iloc[:n], base["train"])
    assert len(splits["train"]) == n + len(concatenations(base["train"], names, 60, seed=0)) > n
    first = (tmp_path / "prepared/train.parquet").read_bytes()
    stage.run(params, tmp_path)  # a repeat writes the same bytes: DVC's cached output does not change
    assert (tmp_path / "prepared/train.parquet").read_bytes() == first
