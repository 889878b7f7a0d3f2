#!/usr/bin/env bash
# The VLA agents with learned language, one network per kind across all six tasks: per task
# 1,000 pixel demos (expert noise 0.1, reach 0.3; seeds from 100000; language=train), then
# `train agent --kind KIND --steps STEPS` for KIND in end-to-end (end-to-end) and
# hierarchical (System 2 speaking words over it), one process per core, then each agent
# evaluated per task on EPISODES (25) held-out seeds (0..) in distribution and on every held-out
# language phenomenon (`bench language`). Writes WORK/KIND/ and
# benchmarks/results/vla-multitask-KIND.json. Resumable: rerun after a kill (collection and
# training resume; finished evaluations are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/vla-mt}"
PY="${PY:-.venv/bin/python}"
STEPS="${STEPS:-16000}"
EPISODES="${EPISODES:-25}"
DATA=()
for TASK in reach push pick-place stack sort chain; do
  NOISE=0.1 DIR="$WORK/$TASK"
  if [ "$TASK" = reach ]; then NOISE=0.3 DIR="$WORK/reach-noise0.3"; fi
  if [ "${COLLECT:-1}" = 1 ]; then
    $PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 \
      --noise "$NOISE" --workers 2 --set language=train --out "$DIR" --quiet > /dev/null
  fi
  DATA+=("$DIR")
done
run_kind() {
  $PY -m embodied train agent --kind "$1" --data "${DATA[@]}" --out "$WORK/$1" \
    --steps "$STEPS" --seed 0 --threads 1 --quiet
  $PY -m embodied bench language "$WORK/$1" --episodes "$EPISODES" \
    --out "benchmarks/results/vla-multitask-$1.json" --quiet
}
read -r -a KINDS <<< "${KINDS:-end-to-end hierarchical}"
PIDS=()
for KIND in "${KINDS[@]}"; do
  run_kind "$KIND" > "$WORK/$KIND.log" 2>&1 &
  PIDS+=("$!")
  [ "${PARALLEL:-1}" = 1 ] || wait "${PIDS[-1]}"
done
for PID in "${PIDS[@]}"; do wait "$PID"; done
echo "results: benchmarks/results/vla-multitask-*.json"
