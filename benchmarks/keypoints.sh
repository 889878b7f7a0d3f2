#!/usr/bin/env bash
# bc-keypoints, single task from pixels (issue 10): per task (pick-place, push, stack), 1,000
# pixel demos (expert noise 0.1, seeds from 100000, language=train so no held-out composition is
# shown), the default preset (4,000 perception updates + 2,000 state updates on perceived
# features, one torch thread), evaluated on 50 held-out seeds in distribution and on held-out
# language through `bench agents`. Resumable: rerun after a kill. Settings: TASKS, DEMOS (1000),
# EPISODES (50), WORK (runs/bench-keypoints). Run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-keypoints}"
PY=.venv/bin/python
mkdir -p benchmarks/results
for TASK in ${TASKS:-pick-place push stack}; do
  $PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 --noise 0.1 \
    --workers 2 --set language=train --out "$WORK/data/$TASK" --quiet
  $PY -m embodied bench agents --data "$WORK/data/$TASK" --out "$WORK/$TASK" --kinds bc-keypoints \
    --seeds 0 --episodes "${EPISODES:-50}" --quiet
  cp "$WORK/$TASK/results.json" "benchmarks/results/keypoints-$TASK.json"
done
