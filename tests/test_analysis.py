import numpy as np
import pandas as pd
import pytest

from emotion_classifier.analysis import analyze, cooccurrence

NAMES = ["a", "b", "c"]


def _df(label_sets):
    y = np.zeros((len(label_sets), 3), dtype=np.int8)
    for i, s in enumerate(label_sets):
        y[i, s] = 1
    return pd.DataFrame({"text": ["t"] * len(label_sets), "label_ids": label_sets, "labels": list(y)})


def test_cooccurrence_by_hand():
    # a: rows 0,1,2; b: rows 1,2,3; c: row 2
    y = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 0]])
    co = cooccurrence(y)
    assert co["counts"].tolist() == [[3, 2, 1], [2, 3, 1], [1, 1, 1]]
    assert co["conditional"][0, 1] == pytest.approx(2 / 3)  # P(b | a)
    assert co["conditional"][2, 0] == pytest.approx(1.0)  # P(a | c)
    assert co["jaccard"][0, 1] == pytest.approx(2 / 4)  # both 2, either 4
    assert co["jaccard"][0, 2] == pytest.approx(1 / 3)


def test_cooccurrence_label_without_examples_is_zero_not_nan():
    co = cooccurrence(np.array([[1, 0], [1, 0]]))
    assert co["conditional"][1].tolist() == [0.0, 0.0]
    assert np.isfinite(co["jaccard"]).all()


def test_analyze_counts_on_fixture():
    train = _df([[0], [0, 1], [0, 1, 2], [1], [0, 1, 2]])
    dev = _df([[2], [0, 1]])
    lengths = {"train": np.array([5, 10, 15, 20, 100]), "dev": np.array([3, 4])}
    metrics, dist, co = analyze({"train": train, "dev": dev}, NAMES, lengths)
    assert metrics["train.examples"] == 5
    assert metrics["train.labels_per_example_1"] == 2
    assert metrics["train.labels_per_example_2"] == 1
    assert metrics["train.labels_per_example_3"] == 2
    assert metrics["train.labels_per_example_5plus"] == 0
    assert metrics["train.count_a"] == 4 and metrics["train.count_b"] == 4 and metrics["train.count_c"] == 2
    assert metrics["train.token_length_mean"] == 30.0
    assert metrics["train.token_length_p50"] == 15.0
    assert metrics["train.token_length_max"] == 100
    assert metrics["dev.count_c"] == 1
    row = dist[(dist["label"] == "b") & (dist["series"] == "dev")]
    assert row["count"].item() == 1
    assert co["counts"][0, 1] == 3
