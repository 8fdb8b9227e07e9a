"""Distillation: train.teacher's probabilities blended into the training targets."""


import numpy as np
import pytest

from emotion_classifier import data
from emotion_classifier.errors import UserError
from emotion_classifier.experiments.teach import write_teacher
from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.params import resolve, with_overrides
from emotion_classifier.training.distill import training_targets
from emotion_classifier.training.identity import run_id
from emotion_classifier.training.loop import fit

from .conftest import tiny_params


@pytest.fixture()
def project(tmp_path, tiny_encoder, tiny_prepared):
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool", epochs=4), {"data.prepared_dir": str(tiny_prepared)})
    return tmp_path, p, *data.load_prepared(tiny_prepared)


def _teacher(d, splits, probs, name="t.npz"):
    from emotion_classifier.experiments import teach

    return teach.save(d / "teachers" / name, splits["train"]["id"], probs, {"kind": "test"})


def test_targets_blend_labels_and_teacher_and_refuse_other_data(project):
    d, p, splits, _ = project
    y = data.label_matrix(splits["train"])
    teacher = (np.round(np.random.default_rng(0).random(y.shape) * 1024) / 1024).astype(np.float16)  # as kept
    _teacher(d, splits, teacher)

    def targets(name: str):
        job = resolve(with_overrides(p, {"train.teacher": name, "train.distill_weight": 0.25}), d / "teachers")
        return training_targets(job.teacher, job.train.distill_weight, splits["train"], y)

    assert np.allclose(targets("t.npz"), 0.75 * y + 0.25 * teacher.astype(np.float32))
    assert targets("") is y
    _teacher(d, {"train": splits["train"].iloc[::-1]}, teacher, "reversed.npz")
    with pytest.raises(UserError, match="teachers/reversed.npz: the teacher scored other training data"):
        targets("reversed.npz")
    with pytest.raises(UserError, match="teachers/missing.npz not found; write it with"):
        targets("missing.npz")


def test_a_teacher_file_with_one_byte_changed_is_refused_in_one_line_naming_it(project):
    """Issue 48: a byte changed anywhere in the stored probabilities (a CRC mismatch, or a deflate stream that no
    longer decodes) is refused by train in one line naming the file, never a traceback."""
    d, p, splits, _ = project
    y = data.label_matrix(splits["train"])
    path = _teacher(d, splits, np.random.default_rng(0).random(y.shape))
    good = path.read_bytes()
    with np.load(path) as f:
        probs, ids = f["probs"], f["ids"]
    job = resolve(with_overrides(p, {"train.teacher": "t.npz"}), d / "teachers")
    for pos in range(60, len(good) - 100, max(1, (len(good) - 160) // 12)):  # local headers, data, directory
        for byte in (good[pos] ^ 1, 0xFF):
            path.write_bytes(good[:pos] + bytes([byte]) + good[pos + 1:])
            try:
                training_targets(job.teacher, 0.5, splits["train"], y)
            except UserError as e:
                assert str(path) in str(e) and "\n" not in str(e)
                continue
            with np.load(path) as f:  # not refused (a header's timestamp, say): the targets read are intact
                assert np.array_equal(f["probs"], probs) and np.array_equal(f["ids"], ids)
    path.write_bytes(good)


def test_a_student_learns_the_teachers_probabilities(project):
    """With distill_weight 1 the labels are ignored: a teacher that says 0.05 everywhere is what the student
    learns towards (trained on the labels, the same model predicts ~1/3, each tiny label's share)."""
    d, p, splits, names = project
    y = data.label_matrix(splits["train"])
    _teacher(d, splits, np.full(y.shape, 0.05))
    student = resolve(with_overrides(p, {"train.teacher": "t.npz", "train.distill_weight": 1.0}), d / "teachers")
    assert run_id(student, splits, names) != run_id(resolve(p), splits, names)
    for job, out in ((student, "student"), (resolve(p), "labels")):
        fit(job, splits, names, model_dir=d / out, metrics_path=None, live_dir=None, checkpoint_root=d / "ckpt")
    student, labels = (EmotionClassifier.load(d / out, "fixed").predict_proba(splits["dev"]["text"]).mean()
                       for out in ("student", "labels"))
    assert student < 0.15 < labels, (student, labels)


def test_write_teacher_scores_the_training_split(project):
    d, p, splits, names = project
    fit(resolve(with_overrides(p, {"train.epochs": 1})), splits, names, model_dir=d / "m", metrics_path=None,
        live_dir=None, checkpoint_root=d / "ckpt")
    write_teacher(d / "m", d / "teachers/m.npz", p.data.prepared_dir)
    with np.load(d / "teachers/m.npz") as f:
        expected = EmotionClassifier.load(d / "m", "fixed").predict_proba(splits["train"]["text"])
        assert np.allclose(f["probs"], expected, atol=1e-3)  # float16
        assert list(f["ids"]) == splits["train"]["id"].astype(str).tolist()


def test_a_cross_fitted_teacher_never_scores_an_example_with_a_model_that_trained_on_it(project, monkeypatch):
    """Issue 48 (1): each member trains on the other folds and scores its own; the file holds the weighted
    average, its provenance, and `train` reads it. Run again, every fold model is kept."""
    import json

    from emotion_classifier.experiments import teach
    from emotion_classifier.stages import train as train_stage

    d, p, splits, names = project
    p = with_overrides(p, {"train.epochs": 1, "ensemble.members": [{"model.name": "bilstm_maxpool"},
                                                                   {"model.name": "textcnn", "seed": 1}]})
    trained_on = {}
    real = train_stage.obtain_member

    def recording(job, part, names_, out, **kw):
        trained_on[out.name] = set(part["train"]["id"])
        return real(job, part, names_, out, **kw)
    monkeypatch.setattr(train_stage, "obtain_member", recording)
    probs, provenance = teach.cross_fit(p, splits, names, 2, d / "work")

    ids = splits["train"]["id"].to_numpy()
    fold = teach.folds_of(len(ids), 2, p.seed)
    assert sorted(trained_on) == ["fold0-member0", "fold0-member1", "fold1-member0", "fold1-member1"]
    for run in provenance["runs"]:
        scored = set(ids[fold == run["fold"]])
        assert scored and not scored & trained_on[f"fold{run['fold']}-member{run['member']}"]
        assert scored | trained_on[f"fold{run['fold']}-member{run['member']}"] == set(ids)
    weights = provenance["member_weights"]
    assert len(weights) == 2 and abs(sum(weights) - 1) < 1e-6
    for k in (0, 1):  # every target is the weighted average of the fold-k models, which never saw fold k
        rows = np.flatnonzero(fold == k)
        texts = list(splits["train"]["text"].iloc[rows])
        members = [EmotionClassifier.load(d / "work" / f"fold{k}-member{m}", "fixed").predict_proba(texts)
                   for m in (0, 1)]
        assert np.allclose(probs[rows], weights[0] * members[0] + weights[1] * members[1], atol=1e-5)

    path = teach.save(d / "teachers/cf.npz", splits["train"]["id"], probs, provenance)
    with np.load(path) as f:
        kept = json.loads(str(f["provenance"]))
    assert kept["kind"] == "cross-fitted" and kept["folds"] == 2 and kept["cpu_kind"] and len(kept["runs"]) == 4
    job = resolve(with_overrides(p, {"train.teacher": "cf.npz", "train.distill_weight": 0.5}), d / "teachers")
    y = data.label_matrix(splits["train"])
    assert np.allclose(training_targets(job.teacher, 0.5, splits["train"], y), 0.5 * y + 0.5 * probs, atol=1e-3)

    # an interrupted or repeated run: kept; and main as the student of this very teacher (params.yaml's
    # train.teacher set) does not turn the teacher's members into students
    student_params = with_overrides(p, {"train.teacher": "cf.npz"})
    monkeypatch.setattr(train_stage, "obtain_member", lambda job, *a, **kw: (
        trained_on.update(teacher=job.teacher), real(job, *a, **kw))[1])
    _, again = teach.cross_fit(student_params, splits, names, 2, d / "work")
    assert {r["how"] for r in again["runs"]} == {"trained already, kept"} and trained_on["teacher"] is None


def test_a_teacher_file_is_scored_against_the_training_labels_as_train_reads_it(project):
    """The teacher's quality the reports quote (out-of-fold CV F1 on the training split) comes from one command."""
    from emotion_classifier.experiments.teach import score

    d, p, splits, _ = project
    y = data.label_matrix(splits["train"])
    assert score(_teacher(d, splits, y.astype(np.float32), "labels.npz"), p.data.prepared_dir) == (1.0, 1.0)
    macro, micro = score(_teacher(d, splits, np.random.default_rng(0).random(y.shape)), p.data.prepared_dir)
    assert macro < 0.9 and micro < 0.9
    _teacher(d, {"train": splits["train"].iloc[::-1]}, y, "reversed.npz")
    with pytest.raises(UserError, match="the teacher scored other training data"):
        score(d / "teachers" / "reversed.npz", p.data.prepared_dir)
