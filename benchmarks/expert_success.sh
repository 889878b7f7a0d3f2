#!/usr/bin/env bash
# Scripted-expert success per task over 100 seeded episodes, without and with action noise 0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python -m embodied bench experts --episodes "${EPISODES:-100}" --noise 0.0 --out benchmarks/results/experts_noise0.json --quiet
.venv/bin/python -m embodied bench experts --episodes "${EPISODES:-100}" --noise 0.1 --out benchmarks/results/experts_noise0.1.json --quiet
