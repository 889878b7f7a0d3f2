#!/usr/bin/env bash
# RL from scratch on task-relative state (issue 12): SAC with hindsight experience replay (HER,
# the sparse goal reward on the goal-conditioned view of the task) against SAC on the task's own
# sparse and dense rewards, equal env steps, per task in TASKS (default "push pick-place"), one
# `bench rl` per task; the tasks run side by side, one process per core (PARALLEL=0: one after
# the other). Settings: VARIANTS (her,scratch-sparse,scratch-dense), STEPS (50000), SEEDS (0),
# EVAL_EVERY (5000), EVAL_EPISODES (20), WORK (runs/bench-rl-scratch). Results:
# benchmarks/results/rl-scratch-TASK.{json,png}. Resumable: rerun after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-rl-scratch}"
read -r -a TASK_LIST <<< "${TASKS:-push pick-place}"
bench_task() {
  # shellcheck disable=SC2086
  .venv/bin/python -m embodied bench rl --task "$1" --out "$WORK/$1" \
    --variants "${VARIANTS:-her,scratch-sparse,scratch-dense}" --steps "${STEPS:-50000}" \
    --seeds ${SEEDS:-0} --eval-every "${EVAL_EVERY:-5000}" \
    --eval-episodes "${EVAL_EPISODES:-20}" --quiet
}
mkdir -p "$WORK" benchmarks/results
PIDS=()
for TASK in "${TASK_LIST[@]}"; do
  if [ "${PARALLEL:-1}" = 1 ]; then
    bench_task "$TASK" > "$WORK/$TASK.log" 2>&1 &
    PIDS+=("$!")
  else
    bench_task "$TASK"
  fi
done
for PID in "${PIDS[@]}"; do wait "$PID"; done
for TASK in "${TASK_LIST[@]}"; do
  cp "$WORK/$TASK/results.json" "benchmarks/results/rl-scratch-$TASK.json"
  cp "$WORK/$TASK/curves.png" "benchmarks/results/rl-scratch-$TASK.png"
done
