#!/usr/bin/env bash
# One share of `make compare` per Slurm array task: task k of n runs every n-th experiment from the k-th and
# pushes each finished one (`dvc exp push`), so one machine can then pull them all and write the report.
#
#   ORIGIN=git@host:team/emotion-classifier.git sbatch --array=1-4 deploy/slurm-compare.sh   # 4 machines
#   # SEEDS=0,1,2 for more seeds, COMMIT=<sha> for another commit than main
#   # then, on one machine:  dvc exp pull origin && make compare SEEDS=0 REPORT_ONLY=1
#
# Each task makes its own clone of ORIGIN at COMMIT in node-local scratch (WORK), with its own venv, model cache
# and report: array tasks sharing one clone on a shared file system would run `dvc exp` in one repository at once,
# and a cache's writers are judged alive by a local pid. Needs: ORIGIN, a git URL every node can clone from and push
# experiment refs to, and a DVC remote both sides reach (the project's default `storage`).
#SBATCH --job-name=emotion-compare
#SBATCH --cpus-per-task=2
#SBATCH --mem=24G
#SBATCH --time=12:00:00
#SBATCH --output=emotion-compare-%A_%a.log
set -euo pipefail

ORIGIN=${ORIGIN:?the git URL of this repository: ORIGIN=... sbatch ...}
COMMIT=${COMMIT:-main}
SEEDS=${SEEDS:-0}
k=${SLURM_ARRAY_TASK_ID:?run as a Slurm array job: sbatch --array=1-N}
n=${SLURM_ARRAY_TASK_COUNT:-$(( ${SLURM_ARRAY_TASK_MAX:?} - ${SLURM_ARRAY_TASK_MIN:-1} + 1 ))}
WORK=${WORK:-${TMPDIR:-/tmp}/emotion-compare-${SLURM_ARRAY_JOB_ID:-$$}-$k}

git clone -q "$ORIGIN" "$WORK"
cd "$WORK"
git checkout -q "$COMMIT"
export EMOTION_CLASSIFIER_CACHE="$WORK/.cache"   # this task's own model and feature cache
make setup
# one experiment at a time on this node's cores (two CPU-heavy jobs on one machine slow both)
export EMOTION_CLASSIFIER_THREADS=${SLURM_CPUS_PER_TASK:-2}
make compare SEEDS="$SEEDS" SHARE="$k/$n" PUSH=origin
