#!/usr/bin/env bash
# The training-task studies of the README (issue 21), with real Keras training on the
# process backend: how much of the network's training goes into the delivered model
# (training.useful_share) for each built-in task at 5, 11 and 21 employees, and how far
# hardware that computes otherwise diverges on each task. Each sweep resumes where it
# stopped when run again; results land in docs/studies/<name>/; scripts/task_table.py
# prints the README's table from them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
# One run at a time: a run's employees already use both cores, and the CPU seconds it
# measures would count a neighbour's contention.
"$PY" -m simulation.sweep --jobs 1 --quiet --out docs/studies/useful_work --seeds 3 \
    --set TASK=mnist-dnn,mnist-cnn,mnist-dnn-batch32,digits-mlp \
    --set EMPLOYEES_NUM=5,11,21
# XLA and oneDNN against the reference, per task (20 stages each, a fresh process per
# computation).
for task in mnist-dnn mnist-cnn mnist-dnn-batch32 digits-mlp; do
    "$PY" scripts/hardware_divergence.py --task "$task" --stages 20
done | tee docs/studies/hardware_tasks.txt
