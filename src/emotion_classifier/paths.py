"""Every file and folder the stages write, in one place.

`OUTS` is exactly what dvc.yaml declares as outs and metrics (tests/test_dvc_deps.py checks both directions); the
rest name files inside those outs, or places that are not outs. Input locations are params: data.raw_dir,
data.prepared_dir."""

from .model_dir import CONFIG, MANIFEST, MEMBERS, THRESHOLDS, TOKENIZER, WEIGHTS

PARAMS_CHECKED = "data/params_checked"

# train
MODEL_DIR = "models"
MODEL_FILES = tuple(f"{MODEL_DIR}/{name}" for name in (WEIGHTS, CONFIG, TOKENIZER, MANIFEST))
MEMBERS_DIR = f"{MODEL_DIR}/{MEMBERS}"  # an ensemble's further models (only a note for one model)
LIVE_DIR = "dvclive"
LIVE_OUTS = (f"{LIVE_DIR}/plots", f"{LIVE_DIR}/metrics.json", f"{LIVE_DIR}/params.yaml")  # DVCLive writes these
TRAIN_METRICS = "metrics/train.json"
RUN_ENVIRONMENT = "metrics/environment.json"  # each model's libraries, machine kind, teacher and encoder content

# tune_thresholds
TUNED_THRESHOLDS = f"{MODEL_DIR}/{THRESHOLDS}"
THRESHOLDS_METRICS = "metrics/thresholds.json"
THRESHOLDS_CURVE = "plots/thresholds/f1_vs_threshold.csv"

# analyze_dataset
DATASET_METRICS = "metrics/dataset.json"
DATASET_PLOTS = "plots/dataset"
LABEL_DISTRIBUTION = f"{DATASET_PLOTS}/label_distribution.csv"
COOCCURRENCE = {kind: f"{DATASET_PLOTS}/cooccurrence_{kind}.png" for kind in ("counts", "conditional", "jaccard")}
DATASET_STATISTICS = f"{DATASET_PLOTS}/statistics.json"

# evaluate: plots/eval is one out, these are files in it
EVAL_METRICS = "metrics/eval.json"
INFERENCE_METRICS = "metrics/inference.json"
TEST_PREDICTIONS = "data/predictions/test.npz"  # compare pairs its baseline with these, example by example
EVAL_PLOTS = "plots/eval"
PER_LABEL = f"{EVAL_PLOTS}/per_label.csv"
ALL_SCORES = f"{EVAL_PLOTS}/all_scores.json"
PRECISION_RECALL = f"{EVAL_PLOTS}/precision_recall.csv"
ROC = f"{EVAL_PLOTS}/roc.csv"
CONFUSION = f"{EVAL_PLOTS}/confusion_matrices.png"
ERROR_COOCCURRENCE = {kind: f"{EVAL_PLOTS}/error_cooccurrence_{kind}.png" for kind in ("counts", "conditional",
                                                                                      "jaccard")}
RELIABILITY = f"{EVAL_PLOTS}/reliability.png"

# compare
COMPARE_METRICS = "metrics/compare.json"
COMPARE_REPORT = "reports/compare.md"
COMPARE_PER_LABEL = "plots/compare/per_label_f1.csv"

OUTS = (PARAMS_CHECKED, *COOCCURRENCE.values(), LABEL_DISTRIBUTION, DATASET_STATISTICS, DATASET_METRICS,
        *MODEL_FILES, MEMBERS_DIR, *LIVE_OUTS, TRAIN_METRICS, RUN_ENVIRONMENT, TUNED_THRESHOLDS, THRESHOLDS_CURVE,
        THRESHOLDS_METRICS, EVAL_PLOTS, TEST_PREDICTIONS, EVAL_METRICS, INFERENCE_METRICS, COMPARE_REPORT,
        COMPARE_PER_LABEL, COMPARE_METRICS)

# not outs
CHECKPOINTS = ".checkpoints"  # a killed run's state, until it finishes
TEACHERS_DIR = "teachers"  # distillation targets: train.teacher names a file here (a dep of train)
