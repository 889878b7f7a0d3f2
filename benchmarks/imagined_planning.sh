#!/usr/bin/env bash
# System 2 thinking with a world model of the perceived objects (issue 14), on the six-task
# hierarchical keypoint agent (benchmarks/keypoints_multitask.sh) for sort and chain. Per task: a
# world model per seed in WM_SEEDS, trained on the first EPISODES (150) of that task's demos with
# its slots started from the agent's perception (default preset, 3000 updates); then on 50
# held-out seeds from each of EVAL_SEEDS, three System 2s over the same System 1: the learned
# planner alone (the ablation without imagination), the learned planner with each world model's
# check (`eval --world-model`), and imagination alone (`eval --planner imagined`: every 8 steps
# the subtask with the most imagined progress; IMAGINED_WM_SEEDS, default all of WM_SEEDS: the
# world models it is evaluated with). Then one round of learning from experience
# (ROUNDS=0: none): ROLLOUTS (100) episodes of the imagination-only agent on seeds from 200000,
# added to the demos, a world model retrained on both (`wm-TASK-r1-sSEED`), and the two rows
# with it evaluated again. The two tasks run side by side, one core each (PARALLEL=0: one after
# the other). Resumable: finished runs are skipped. The table goes to
# benchmarks/results/imagined-planning.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-keypoints}"
AGENT="${AGENT:-runs/bench-keypoints2/multitask-hierarchical-keypoints/runs/hierarchical-keypoints-s0}"
OUT="${OUT:-runs/bench-imagined}"
PY="${PY:-.venv/bin/python}"
read -r -a WM_SEEDS <<< "${WM_SEEDS:-0}"
read -r -a EVAL_SEEDS <<< "${EVAL_SEEDS:-0 100}"
IMAGINED_WM_SEEDS=" ${IMAGINED_WM_SEEDS:-${WM_SEEDS[*]}} "
EPISODES="${EPISODES:-150}"
ROLLOUTS="${ROLLOUTS:-100}"

evaluate() {  # evaluate DIR ARGS...: one 50-episode evaluation unless DIR already holds it
  local dir="$1"
  shift
  [ -f "$dir/metrics.json" ] || $PY -m embodied eval --agent "$AGENT" --episodes 50 \
    --num-envs 1 --out "$dir" --quiet "$@"
}

bench_task() {
  local task="$1" data="$OUT/data-$1"
  mkdir -p "$data"
  cp "$WORK/data/$task/meta.json" "$data/"
  for ((i = 0; i < EPISODES; i++)); do
    ln -sf "$(realpath "$WORK/data/$task/$(printf 'episode_%06d.npz' "$i")")" "$data/"
  done
  for wm in "${WM_SEEDS[@]}"; do
    [ -f "$OUT/wm-$task-s$wm/eval.json" ] || $PY -m embodied train world-model --data "$data" \
      --out "$OUT/wm-$task-s$wm" --seed "$wm" --threads 1 --perception "$AGENT" --quiet
  done
  for seed in "${EVAL_SEEDS[@]}"; do
    evaluate "$OUT/eval-$task-learned-e$seed" --task "$task" --seed "$seed"
    for wm in "${WM_SEEDS[@]}"; do
      evaluate "$OUT/eval-$task-check-s$wm-e$seed" --task "$task" --seed "$seed" \
        --world-model "$OUT/wm-$task-s$wm"
      [[ "$IMAGINED_WM_SEEDS" != *" $wm "* ]] || evaluate "$OUT/eval-$task-imagined-s$wm-e$seed" \
        --task "$task" --seed "$seed" --world-model "$OUT/wm-$task-s$wm" --planner imagined
    done
  done
  [ "${ROUNDS:-1}" = 1 ] || return 0
  for wm in "${WM_SEEDS[@]}"; do  # the imagination-only agent's own episodes, then both
    local rollouts="$OUT/rollouts-$task-s$wm" mixed="$OUT/data-$task-r1-s$wm"
    $PY -m embodied collect --task "$task" --episodes "$ROLLOUTS" --seed 200000 --out "$rollouts" \
      --agent "$AGENT" --world-model "$OUT/wm-$task-s$wm" --planner imagined --quiet > /dev/null
    mkdir -p "$mixed"
    cp "$data/meta.json" "$mixed/"
    ln -sf "$(realpath "$data")"/episode_*.npz "$mixed/"
    for ((i = 0; i < ROLLOUTS; i++)); do
      ln -sf "$(realpath "$rollouts/$(printf 'episode_%06d.npz' "$i")")" \
        "$mixed/$(printf 'episode_%06d.npz' $((EPISODES + i)))"
    done
    [ -f "$OUT/wm-$task-r1-s$wm/eval.json" ] || $PY -m embodied train world-model \
      --data "$mixed" --out "$OUT/wm-$task-r1-s$wm" --seed "$wm" --threads 1 \
      --perception "$AGENT" --quiet
    for seed in "${EVAL_SEEDS[@]}"; do
      evaluate "$OUT/eval-$task-check-r1-s$wm-e$seed" --task "$task" --seed "$seed" \
        --world-model "$OUT/wm-$task-r1-s$wm"
      [[ "$IMAGINED_WM_SEEDS" != *" $wm "* ]] || evaluate \
        "$OUT/eval-$task-imagined-r1-s$wm-e$seed" --task "$task" --seed "$seed" \
        --world-model "$OUT/wm-$task-r1-s$wm" --planner imagined
    done
  done
}

if [ "${PARALLEL:-1}" = 1 ]; then
  bench_task sort > "$OUT.sort.log" 2>&1 &
  SORT=$!
  bench_task chain > "$OUT.chain.log" 2>&1 &
  CHAIN=$!
  wait "$SORT"
  wait "$CHAIN"
else
  bench_task sort
  bench_task chain
fi
$PY benchmarks/imagined_planning_table.py "$OUT" --out benchmarks/results/imagined-planning.json
