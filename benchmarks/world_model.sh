#!/usr/bin/env bash
# World model: training throughput (ours vs the naive pixel model, same run), imagination speed
# (512 candidates x horizon 10), and prediction quality on 60 noisy demos of pick-place and of
# stack: the default pixel model (object slots), the same without slots (the baseline of the same
# run), the state model without and with slots, and the pixel model whose slots start from a
# keypoint agent's perception (`perceived`: per task the bc-keypoints agent of
# benchmarks/keypoints.sh's recipe; linked from KEYPOINTS=runs/bench-keypoints where that script
# left one, else trained first, ~15 minutes per task). About 75 minutes in all. Run nothing else
# meanwhile. OUT: the results file (default benchmarks/results/world_model.json).
set -euo pipefail
TASKS="${TASKS:-pick-place,stack}"
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
WORK=runs/bench-world-model
mkdir -p "$WORK"
for task in ${TASKS//,/ }; do
  agent="${KEYPOINTS:-runs/bench-keypoints}/$task/runs/bc-keypoints-s0"
  [ -e "$WORK/perception-$task" ] || [ ! -f "$agent/agent.pt" ] \
    || ln -s "$(realpath "$agent")" "$WORK/perception-$task"
done
.venv/bin/python -m embodied bench world-model --out "${OUT:-benchmarks/results/world_model.json}" \
  --work-dir "$WORK" --episodes "${EPISODES:-60}" \
  --tasks "$TASKS" --variants "${VARIANTS:-default,perceived,default-no-slots,state,state-slots}"
