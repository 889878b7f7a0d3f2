#!/usr/bin/env bash
# The pixel agents on perceived objects, single task (issue 10): per task (pick-place, push,
# stack; TASKS=reach for reach), 1,000 pixel demos (expert noise 0.1, reach 0.3, seeds from
# 100000, language=train), the default presets (8,000 updates of perception + decision
# networks, then 2,000 decision updates on perceived tables, one torch thread), evaluated on
# 50 held-out seeds in distribution, under the oracle System 2 (hierarchical) and on held-out
# language, through `bench agents`. Rows:
# bc-keypoints (end-to-end: System 1 on the whole instruction) and hierarchical-keypoints
# (System 2 + System 1 on subtasks). Resumable: rerun after a kill. Settings: TASKS, KINDS, SEEDS
# (0; "0 1 2" for the three-seed pick-place row), DEMOS (1000), EPISODES (50), STEPS (stage
# one's updates; default the preset's 8,000), WORK
# (runs/bench-keypoints); SHIP=1 copies the pick-place seed-0 agents into assets/agents/ (what the
# demo evaluates). Run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-keypoints}"
PY=.venv/bin/python
mkdir -p benchmarks/results
for TASK in ${TASKS:-pick-place push stack}; do
  NOISE=0.1 NAME="$TASK"
  if [ "$TASK" = reach ]; then  # reach's 7-step demos need a wider spread of states
    NOISE=0.3 NAME=reach-noise0.3
  fi
  $PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 \
    --noise "$NOISE" --workers 2 --set language=train --out "$WORK/data/$NAME" --quiet
  # shellcheck disable=SC2086
  $PY -m embodied bench agents --data "$WORK/data/$NAME" --out "$WORK/$NAME" \
    --kinds ${KINDS:-bc-keypoints hierarchical-keypoints} --seeds ${SEEDS:-0} \
    --episodes "${EPISODES:-50}" ${STEPS:+--steps "$STEPS"} --quiet
  cp "$WORK/$NAME/results.json" "benchmarks/results/keypoints-$TASK.json"
done
if [ "${SHIP:-0}" = 1 ]; then
  for KIND in bc-keypoints hierarchical-keypoints; do
    mkdir -p "assets/agents/$KIND-pick-place"
    cp "$WORK/pick-place/runs/$KIND-s0/agent.pt" "$WORK/pick-place/runs/$KIND-s0/train.json" \
      "assets/agents/$KIND-pick-place/"
  done
fi
