#!/usr/bin/env bash
# Residual RL over a frozen imitation agent vs SAC from scratch on task-relative state (issue 12):
# equal env steps, success on held-out seeds every EVAL_EVERY steps (the first point, step 0, is
# where each starts: the residual's is the base agent), curves vs env steps and wall-clock, and
# SB3 SAC's throughput on Gymnasium's Pusher-v5 measured in the same run.
# BASE: the imitation agent (default: the bc-pixels floor of benchmarks/agents_single_task.sh);
# SEEDS (default "0 1 2"); VARIANTS (default residual,scratch; see `bench rl --help`); NAME: the results' file name
# (benchmarks/results/rl-NAME.json and .png); FACTORS (NAME=M[,NAME=M]): a fixed deployment
# condition every run trains and is evaluated under. Resumable: rerun after a kill. Each seed trains
# two runs of ~25 minutes; run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
TASK="${TASK:-pick-place}"
BASE="${BASE:-runs/bench-$TASK/runs/bc-pixels-s0}"
WORK="${WORK:-runs/bench-rl-$TASK}"
.venv/bin/python -m embodied bench rl --base "$BASE" --task "$TASK" --out "$WORK" ${FACTORS:+--factors "$FACTORS"} \
  --steps "${STEPS:-50000}" --seeds ${SEEDS:-0 1 2} --eval-every "${EVAL_EVERY:-5000}" \
  --eval-episodes "${EVAL_EPISODES:-50}" --variants "${VARIANTS:-residual,scratch}" --quiet
NAME="${NAME:-$TASK}"
mkdir -p benchmarks/results
cp "$WORK/results.json" "benchmarks/results/rl-$NAME.json"
cp "$WORK/curves.png" "benchmarks/results/rl-$NAME.png"
