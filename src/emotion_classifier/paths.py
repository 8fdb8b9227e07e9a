"""Every file and folder the stages write, in one place (dvc.yaml declares the same paths; a test checks
they agree). Input locations are params: data.raw_dir, data.prepared_dir."""

PARAMS_CHECKED = "data/params_checked"
MODEL_DIR = "models"
MEMBERS_DIR = "models/members"  # an ensemble's further models (empty for one model)
CHECKPOINTS = ".checkpoints"
TEACHERS_DIR = "teachers"  # distillation targets: train.teacher names a file here
LIVE_DIR = "dvclive"
TEST_PREDICTIONS = "data/predictions/test.npz"  # compare pairs its baseline with these, example by example

DATASET_METRICS = "metrics/dataset.json"
TRAIN_METRICS = "metrics/train.json"
THRESHOLDS_METRICS = "metrics/thresholds.json"
EVAL_METRICS = "metrics/eval.json"
INFERENCE_METRICS = "metrics/inference.json"
COMPARE_METRICS = "metrics/compare.json"

DATASET_PLOTS = "plots/dataset"
THRESHOLDS_PLOTS = "plots/thresholds"
EVAL_PLOTS = "plots/eval"
COMPARE_PLOTS = "plots/compare"
PER_LABEL = f"{EVAL_PLOTS}/per_label.csv"
COMPARE_REPORT = "reports/compare.md"
