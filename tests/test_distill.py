"""Distillation: train.teacher's probabilities blended into the training targets."""


import numpy as np
import pytest

from emotion_classifier import data
from emotion_classifier.errors import UserError
from emotion_classifier.experiments.teach import write_teacher
from emotion_classifier.inference import EmotionClassifier
from emotion_classifier.params import resolve, with_overrides
from emotion_classifier.training.checkpoint import run_id
from emotion_classifier.training.distill import save_teacher, training_targets
from emotion_classifier.training.loop import fit

from .conftest import tiny_params


@pytest.fixture()
def project(tmp_path, tiny_encoder, tiny_prepared):
    p = with_overrides(tiny_params(tiny_encoder, "bilstm_maxpool", epochs=4), {"data.prepared_dir": str(tiny_prepared)})
    return tmp_path, p, *data.load_prepared(tiny_prepared)


def _teacher(d, splits, probs, name="t.npz"):
    save_teacher(d / "teachers" / name, splits["train"], probs)


def test_targets_blend_labels_and_teacher_and_refuse_other_data(project):
    d, p, splits, _ = project
    y = data.label_matrix(splits["train"])
    teacher = np.random.default_rng(0).random(y.shape).astype(np.float16)
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


def test_a_student_learns_the_teachers_probabilities(project):
    """With distill_weight 1 the labels are ignored: a teacher that says 0.05 everywhere is what the student
    learns towards (trained on the labels, the same model predicts ~1/3, each tiny label's share)."""
    d, p, splits, names = project
    y = data.label_matrix(splits["train"])
    _teacher(d, splits, np.full(y.shape, 0.05))
    student = resolve(with_overrides(p, {"train.teacher": "t.npz", "train.distill_weight": 1.0}), d / "teachers")
    assert (run_id(student, splits, names, *_device_precision())
            != run_id(resolve(p), splits, names, *_device_precision()))
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


def _device_precision():
    import torch

    return torch.device("cpu"), "fp32"
