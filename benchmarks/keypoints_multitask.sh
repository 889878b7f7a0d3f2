#!/usr/bin/env bash
# The pixel agents on perceived objects, multi-task (issue 10): one network per agent across all
# six tasks. Per task, 1,000 pixel demos (expert noise 0.1, reach 0.3, seeds from 100000,
# language=train; the same demos as benchmarks/keypoints.sh when WORK is shared), then per kind
# one `bench agents` over all six datasets: default presets except STEPS (16000) updates of stage
# one (six tasks' frames), evaluated on 50 held-out seeds per task, in distribution, under the
# oracle System 2 (hierarchical) and on held-out language. The two kinds run side by side, one
# process per core (PARALLEL=0: one after the other; KINDS=<one kind> for one), each writing
# WORK/multitask-KIND/ (and its log beside it), then their results merge into
# benchmarks/results/keypoints-multitask.json. COLLECT=0 skips collection. Resumable: rerun
# after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/bench-keypoints}"
PY="${PY:-.venv/bin/python}"
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
bench_kind() {
  $PY -m embodied bench agents --data "${DATA[@]}" --out "$WORK/multitask-$1" \
    --kinds "$1" --seeds 0 --steps "${STEPS:-16000}" --episodes "${EPISODES:-50}" --quiet
}
read -r -a KIND_LIST <<< "${KINDS:-bc-keypoints hierarchical-keypoints}"
if [ "${PARALLEL:-1}" = 1 ] && [ "${#KIND_LIST[@]}" -gt 1 ]; then
  # one process per kind, one core each (about 7 GB of memory each); logs in WORK/
  PIDS=()
  mkdir -p "$WORK"
  for KIND in "${KIND_LIST[@]}"; do
    bench_kind "$KIND" > "$WORK/multitask-$KIND.log" 2>&1 &
    PIDS+=("$!")
  done
  for i in "${!PIDS[@]}"; do
    wait "${PIDS[$i]}" || { echo "${KIND_LIST[$i]} failed: see $WORK/multitask-${KIND_LIST[$i]}.log" >&2; exit 1; }
  done
else
  for KIND in "${KIND_LIST[@]}"; do bench_kind "$KIND"; done
fi
mkdir -p benchmarks/results
$PY - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from embodied.bench.kinds import merge_results
parts = sorted(Path(sys.argv[1]).glob("multitask-*/results.json"))
out = Path("benchmarks/results/keypoints-multitask.json")
out.write_text(json.dumps(merge_results(parts), indent=2) + "\n")
print(f"{out}: merged {[p.parent.name for p in parts]}")
PY
