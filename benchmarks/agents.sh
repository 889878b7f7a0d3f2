#!/usr/bin/env bash
# The layered agent (issue 4): end-to-end vs hierarchical agents, discrete vs flow action heads,
# 3 training seeds, evaluated on every task with the one harness (20 seeded episodes per task,
# seeds 0-19; the demos use seeds from 100000), plus System 2 without the world-model check, and
# the latency of System 1 and System 2. Resumable: rerun the same command after a kill.
# Demos: 200 chain, 100 sort, 50 each of reach / push / pick-place / stack (expert noise 0.1).
# The world model for System 2 is trained once (default preset) on the chain demos.
# About 2 hours on 2 cores; run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-agents}"
PY=.venv/bin/python
DATA=()
for spec in chain:200 sort:100 reach:50 push:50 pick-place:50 stack:50; do
  task="${spec%%:*}"; n="${spec##*:}"
  $PY -m embodied collect --task "$task" --episodes "$n" --seed 100000 --noise 0.1 \
    --out "$WORK/data/$task" --quiet
  DATA+=("$WORK/data/$task")
done
$PY -m embodied train world-model --data "$WORK/data/chain" --out "$WORK/world-model" --quiet
$PY -m embodied bench agents --data "${DATA[@]}" --out "$WORK" --world-model "$WORK/world-model" \
  --seeds ${SEEDS:-0 1 2} --episodes "${EPISODES:-20}" ${STEPS:+--steps $STEPS} --quiet
cp "$WORK/results.json" benchmarks/results/agents.json
