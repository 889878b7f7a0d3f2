#!/usr/bin/env bash
# World model: training throughput (ours vs the naive pixel model, same run), imagination speed
# (512 candidates x horizon 10), and prediction quality after training the default pixel model
# on 100 noisy demos of push and of pick-place (about 20 minutes in all). Run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python -m embodied bench world-model --out benchmarks/results/world_model.json \
  --work-dir runs/bench-world-model --episodes "${EPISODES:-100}"
