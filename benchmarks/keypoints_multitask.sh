#!/usr/bin/env bash
# The pixel agents on perceived objects, multi-task (issue 10): one network per agent across all
# six tasks. Per task, 1,000 pixel demos (expert noise 0.1, seeds from 100000, language=train;
# the same demos as benchmarks/keypoints.sh when WORK is shared), then per kind one
# `bench agents` over all six datasets: default presets except STEPS (8000) updates of stage one
# (six tasks' frames), evaluated on 50 held-out seeds per task, in distribution, under the
# oracle System 2 (hierarchical) and on held-out language. The kinds run one after the other;
# to use both cores, start two copies with KINDS=bc-keypoints and KINDS=hierarchical-keypoints
# once the data exists (COLLECT=0 skips collection). Each writes WORK/multitask-KIND/, the last
# to finish merges them into benchmarks/results/keypoints-multitask.json. Resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-keypoints}"
PY=.venv/bin/python
TASKS="reach push pick-place stack sort chain"
DATA=()
for TASK in $TASKS; do
  NOISE=0.1 DIR="$WORK/data/$TASK"
  if [ "$TASK" = reach ]; then  # reach's 7-step demos need a wider spread of states
    NOISE="${REACH_NOISE:-0.3}" DIR="$WORK/data/reach-noise$NOISE"
  fi
  if [ "${COLLECT:-1}" = 1 ]; then
    $PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 \
      --noise "$NOISE" --workers 2 --set language=train --out "$DIR" --quiet
  fi
  DATA+=("$DIR")
done
for KIND in ${KINDS:-bc-keypoints hierarchical-keypoints}; do
  $PY -m embodied bench agents --data "${DATA[@]}" --out "$WORK/multitask-$KIND" \
    --kinds "$KIND" --seeds 0 --steps "${STEPS:-8000}" --episodes "${EPISODES:-50}" --quiet
done
mkdir -p benchmarks/results
$PY - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from embodied.bench.agents import merge_results
parts = sorted(Path(sys.argv[1]).glob("multitask-*/results.json"))
out = Path("benchmarks/results/keypoints-multitask.json")
out.write_text(json.dumps(merge_results(parts), indent=2) + "\n")
print(f"{out}: merged {[p.parent.name for p in parts]}")
PY
