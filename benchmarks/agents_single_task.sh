#!/usr/bin/env bash
# The VLA rows on one task from pixels: end-to-end, hierarchical (learned System 2),
# hierarchical under the oracle System 2 and the bc-pixels floor (KINDS), each evaluated on 50
# held-out seeds in distribution and on held-out language (unseen paraphrases, unseen
# colour/destination compositions). Demos: 1,000 of TASK (default pick-place), expert noise 0.1,
# collected with language=train (no held-out composition is ever shown). Resumable: rerun after
# a kill. Settings: TASK, DEMOS (1000), STEPS (first-stage updates, default 8000), EPISODES (50),
# KINDS, WORK (runs/bench-<task>). Run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
TASK="${TASK:-pick-place}"
WORK="${WORK:-runs/bench-$TASK}"
PY=.venv/bin/python
$PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 --noise 0.1 \
  --workers 2 --set language=train --out "$WORK/data/$TASK" --quiet
$PY -m embodied bench agents --data "$WORK/data/$TASK" --out "$WORK" --seeds 0 \
  --kinds ${KINDS:-end-to-end hierarchical bc-pixels} --episodes "${EPISODES:-50}" --steps "${STEPS:-8000}" --quiet
mkdir -p benchmarks/results
cp "$WORK/results.json" "benchmarks/results/agents-$TASK.json"
