#!/usr/bin/env bash
# Env steps/s per task (state obs; 64x64 images) vs raw mj_step on the same controls, and the peers
# FetchPush-v4 (Gymnasium-Robotics), Meta-World push-v3 and Gymnasium Pusher-v5, on one pinned core.
# Installs the optional `bench` extra (the peers). Run nothing else meanwhile: 2 cores are noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,bench
.venv/bin/python -m embodied bench env --out benchmarks/results/env.json --steps "${STEPS:-2000}"
