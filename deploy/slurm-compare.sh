#!/usr/bin/env bash
# One share of `make compare` per Slurm array task: task k of n runs every n-th experiment from the k-th and
# pushes each finished one (`dvc exp push`), so one machine can then pull them all and write the report.
#
#   sbatch --array=1-4 deploy/slurm-compare.sh            # 4 machines; SEEDS=0,1,2 sbatch ... for more seeds
#   # then, on one machine:  dvc exp pull origin && make compare SEEDS=0 REPORT_ONLY=1
#
# Needs on every node: a clone of this repository at the commit to compare (CLONE), a git remote `origin` it can
# push experiment refs to, a DVC remote both sides reach (the project's default `storage`, or one set with
# `dvc remote modify --local storage url ...`), and `make setup` done once (or done here, below).
#SBATCH --job-name=emotion-compare
#SBATCH --cpus-per-task=2
#SBATCH --mem=24G
#SBATCH --time=12:00:00
#SBATCH --output=emotion-compare-%A_%a.log
set -euo pipefail

CLONE=${CLONE:-$PWD}
SEEDS=${SEEDS:-0}
k=${SLURM_ARRAY_TASK_ID:?run as a Slurm array job: sbatch --array=1-N}
n=${SLURM_ARRAY_TASK_COUNT:-$(( ${SLURM_ARRAY_TASK_MAX:?} - ${SLURM_ARRAY_TASK_MIN:-1} + 1 ))}

cd "$CLONE"
make setup
# one experiment at a time on this node's cores (two CPU-heavy jobs on one machine slow both)
export EMOTION_CLASSIFIER_THREADS=${SLURM_CPUS_PER_TASK:-2}
make compare SEEDS="$SEEDS" SHARE="$k/$n" PUSH=origin
