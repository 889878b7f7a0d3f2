#!/usr/bin/env bash
# World model: training throughput (ours vs the naive pixel model, same run), imagination speed
# (512 candidates x horizon 10), and prediction quality on 60 noisy demos of pick-place and of
# stack: the default pixel model (object slots), the same without slots (the baseline of the same
# run), the state model without and with slots, and the pixel model whose slots start from a
# keypoint agent's perception (`perceived`: the shipped pick-place agent's; for stack one is
# trained first, ~15 minutes). About 75 minutes in all. Run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python -m embodied bench world-model --out benchmarks/results/world_model.json \
  --work-dir runs/bench-world-model --episodes "${EPISODES:-60}" \
  --tasks "${TASKS:-pick-place,stack}" --variants "${VARIANTS:-default,perceived,default-no-slots,state,state-slots}"
