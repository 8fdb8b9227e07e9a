"""The paper's coarser taxonomies (data.taxonomy): the tables, prepare's mapping, a coarse model through every
stage, and rolling a 28-label model's probabilities up."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from emotion_classifier import taxonomy as TX
from emotion_classifier.data import read_label_names
from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.params import with_overrides

from .conftest import ROOT, run_stage, tiny_params


def test_every_emotion_lands_in_exactly_one_group_of_each_taxonomy(shared_goemotions):
    names = read_label_names(shared_goemotions / "emotions.txt")
    published = {"ekman": "ekman_mapping.json", "sentiment": "sentiment_dict.json"}
    for taxonomy, groups in TX.GROUPS.items():
        for emotion in names:
            holders = [g for g, emotions in groups.items() if emotion in emotions]
            assert len(holders) == (0 if emotion == "neutral" else 1), (taxonomy, emotion, holders)
        table = json.loads((shared_goemotions / published[taxonomy]).read_text())  # google-research's own file
        assert {g: sorted(e) for g, e in groups.items()} == {g: sorted(e) for g, e in table.items()}
        assert TX.label_names(taxonomy)[-1] == "neutral" and len(TX.label_names(taxonomy)) == len(groups) + 1
    assert len(TX.label_names("ekman")) == 7 and len(TX.label_names("sentiment")) == 4


@pytest.mark.parametrize("taxonomy", TX.TAXONOMIES)
def test_prepare_maps_each_examples_labels_and_leaves_the_default_byte_for_byte(shared_goemotions, tmp_path,
                                                                                   taxonomy):
    from emotion_classifier import data

    p = with_overrides(None, {"model.name": "textcnn", "data.raw_dir": str(shared_goemotions),
                              "data.prepared_dir": str(tmp_path / "out"), "data.max_examples": 300,
                              "data.taxonomy": taxonomy})
    run_stage("prepare", p, tmp_path)
    splits, names = data.load_prepared(tmp_path / "out")
    if taxonomy == "goemotions":
        data.prepare(shared_goemotions, tmp_path / "plain", max_examples=300)
        for f in ("train.parquet", "dev.parquet", "test.parquet", "labels.json"):
            assert (tmp_path / "out" / f).read_bytes() == (tmp_path / "plain" / f).read_bytes()
        return
    assert names == TX.label_names(taxonomy)
    raw, emotions = data.read_raw(shared_goemotions)
    raw_train = data.subset(raw["train"], 300, 0)
    for ids, mapped, y in zip(raw_train["label_ids"], splits["train"]["label_ids"], data.label_matrix(splits["train"])):
        want = {names.index(next((g for g, e in TX.GROUPS[taxonomy].items() if emotions[i] in e), "neutral"))
                for i in ids}
        assert sorted(want) == list(mapped) and set(np.flatnonzero(y)) == want  # multilabel: every group it holds


def test_a_coarse_taxonomy_trains_tunes_evaluates_compares_and_predicts(tiny_encoder, tiny_raw, tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference/results.yaml").write_text((ROOT / "reference/results.yaml").read_text())
    p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=1), {
        "data.raw_dir": str(tiny_raw), "data.prepared_dir": str(tmp_path / "prepared"), "data.taxonomy": "ekman",
        "compare.tfidf_max_features": 1000})
    for stage in ("prepare", "train", "tune_thresholds", "evaluate", "compare"):
        run_stage(stage, p, tmp_path)
    labels = TX.label_names("ekman")
    assert len(pd.read_csv(tmp_path / "plots/eval/per_label.csv")) == len(labels)
    report = (tmp_path / "reports/compare.md").read_text()
    assert "ekman taxonomy" in report and "monologg, bert-base-cased | " in report
    assert "0.6148" in report and "0.4876" not in report  # Ekman's references only, not the 28 labels'
    clf = EmotionClassifier.load(tmp_path / "models")
    assert clf.labels == labels and clf.predict_proba(["so happy", "I hate it"]).shape == (2, 7)


def test_roll_up_takes_each_groups_max_or_noisy_or():
    names = ["joy", "love", "anger", "neutral"]
    probs = np.array([[0.2, 0.5, 0.1, 0.3]])
    up = TX.roll_up(probs, names, "sentiment")
    assert up.tolist() == [[0.5, 0.1, 0.0, 0.3]]  # positive, negative, ambiguous (none of its labels here), neutral
    noisy = TX.roll_up(probs, names, "sentiment", how="noisy_or")
    assert noisy[0, 0] == pytest.approx(1 - 0.8 * 0.5)
    with pytest.raises(ValueError, match="label\\(s\\) banana belong to no group"):
        TX.group_index(["banana"], "ekman")


def test_the_rollup_table_sets_a_rolled_up_model_beside_one_trained_on_the_groups(tiny_encoder, tiny_raw, tmp_path):
    from emotion_classifier.errors import UserError
    from emotion_classifier.experiments.rollup import dev_table

    def trained(taxonomy: str):
        d = tmp_path / taxonomy
        p = with_overrides(tiny_params(tiny_encoder, "textcnn", epochs=1), {
            "data.raw_dir": str(tiny_raw), "data.prepared_dir": str(d / "prepared"), "data.taxonomy": taxonomy})
        for stage in ("prepare", "train"):
            run_stage(stage, p, d)
        return d

    fine, coarse = trained("goemotions"), trained("sentiment")
    lines = dev_table(fine / "models", "sentiment", fine / "prepared", [str(coarse / "models")])
    assert lines[0].startswith("| sentiment: dev, CV protocol |") and len(lines) == 2 + 5
    assert "rolled up (max)" in lines[2] and "rolled up (noisy_or)" in lines[3] and "(trained on sentiment)" in lines[4]
    for line, how in zip(lines[5:], ("max", "noisy_or")):  # each roll-up averaged with the direct model
        w = re.search(r"weights (\d\.\d+) / (\d\.\d+) \|", line)
        assert f"rolled up ({how}) and " in line and w and float(w[1]) + float(w[2]) == pytest.approx(1, abs=2e-3)
    with pytest.raises(UserError, match="labels are not the ekman taxonomy's"):
        dev_table(fine / "models", "ekman", fine / "prepared", [str(coarse / "models")])


def test_a_28_label_model_serves_a_coarse_taxonomy_rolled_up_at_thresholds_tuned_for_it(tuned_model, capsys):
    """Issue 51 (4): tune_thresholds tunes a roll-up of the 28 labels to each coarse taxonomy on dev (max or
    noisy-or, whichever the CV protocol prefers); the API and emotion-predict serve it from the one model."""
    from emotion_classifier import predict
    from emotion_classifier.model_dir import ThresholdsError

    tuned = json.loads((tuned_model / "thresholds.json").read_text())
    section = tuned["taxonomies"]["sentiment"]
    assert section["labels"] == TX.label_names("sentiment") and section["how"] in ("max", "noisy_or")
    assert set(tuned["onnx_int8"]["taxonomies"]) == {"ekman", "sentiment"}  # the int8 model's own, too
    texts = ["so happy", "I hate this", "", "love it"]
    fine = EmotionClassifier.load(tuned_model)
    coarse = EmotionClassifier.load(tuned_model, taxonomy="sentiment")
    assert coarse.labels == TX.label_names("sentiment")
    assert np.allclose(coarse.predict_proba(texts), TX.roll_up(fine.predict_proba(texts), fine.labels, "sentiment",
                                                               section["how"]), atol=1e-6)
    assert coarse.thresholds.tolist() == pytest.approx(section["strategies"]["per_label"])
    assert all(label in coarse.labels for row in coarse.predict(texts) for label, _ in row)
    capsys.readouterr()
    predict.main(["--model-dir", str(tuned_model), "--taxonomy", "ekman", "--text", "so happy", "--json",
                  "--all-scores"])
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert sorted(row["scores"]) == sorted(TX.label_names("ekman")), row
    del tuned["taxonomies"]
    with pytest.raises(ThresholdsError, match="no roll-up to ekman tuned"):
        from emotion_classifier.inference import rollup_section

        rollup_section(tuned, "ekman", tuned_model)


def test_evaluate_scores_each_roll_up_on_test_from_the_same_scores(tuned_model, tiny_encoder, tiny_prepared,
                                                                    tmp_path):
    import shutil

    from emotion_classifier import data
    from emotion_classifier import metrics as M
    from emotion_classifier import thresholds as T

    shutil.copytree(tuned_model, tmp_path / "models")
    p = with_overrides(tiny_params(tiny_encoder, "transformer_finetune", epochs=2), {
        "data.prepared_dir": str(tiny_prepared), "model.transformer_finetune.pooling": "pooler"})
    run_stage("evaluate", p, tmp_path)
    scores = json.loads((tmp_path / "metrics/eval.json").read_text())
    splits, names = data.load_prepared(tiny_prepared)
    section = json.loads((tuned_model / "thresholds.json").read_text())["taxonomies"]["ekman"]
    probs = EmotionClassifier.load(tuned_model).predict_proba(splits["test"]["text"])
    y = data.multi_hot(TX.map_label_ids(splits["test"]["label_ids"], names, "ekman"), 7)
    pred = T.apply(TX.roll_up(probs, names, "ekman", section["how"]), section["strategies"]["per_label"])
    assert scores["test_ekman_rollup_macro_f1"] == pytest.approx(M.macro_f1(y, pred))
    assert "test_sentiment_rollup_micro_f1" in scores
