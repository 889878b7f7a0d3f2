#!/usr/bin/env bash
# Robustness (issue 13). Part 1: bc-state trained nominally vs with domain randomisation
# (physical, sensing, actuation, language; magnitudes drawn up to MAGNITUDE, default 0.5, from
# the training bands), 3 training seeds, through the `all` suite (every factor x low/middle/high,
# all combined) and the world events; the scripted expert as reference. Another MAGNITUDE needs
# another WORK (the DR demos differ).
# Part 2 (PIXELS=1): pixel agents, hierarchical vs end-to-end, 1,000 pick-place demos, through
# the world events (recovery rates) with `compare --suite events`.
# Resumable: rerun after a kill. Run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
PY=.venv/bin/python
WORK="${WORK:-runs/robustness}"
M="${MAGNITUDE:-0.5}"
$PY -m embodied bench robustness --out "$WORK" --task pick-place --demos 200 --seeds 0,1,2 \
  --suite all --episodes 20 --magnitude "$M" --quiet
mkdir -p benchmarks/results
for ext in json md; do
  cp "$WORK/robustness.$ext" "benchmarks/results/robustness-bc-state-dr$M-pick-place.$ext"
done
cp "$WORK/robustness_heatmap.png" "benchmarks/results/robustness-bc-state-dr$M-pick-place.png"
if [ "${PIXELS:-0}" = 1 ]; then
  P="${PIXEL_WORK:-runs/robustness-pixels}"
  $PY -m embodied collect --task pick-place --episodes 1000 --seed 100000 --noise 0.1 \
    --workers "${WORKERS:-2}" --out "$P/data" --quiet
  $PY -m embodied train agent --kind hierarchical --data "$P/data" --out "$P/hierarchical" \
    --steps 8000 --planner-steps 1000 --quiet
  $PY -m embodied train agent --kind end-to-end --data "$P/data" --out "$P/end-to-end" \
    --steps 9000 --quiet
  $PY -m embodied compare "$P/hierarchical" "$P/end-to-end" --out "$P/compare" --tasks pick-place \
    --episodes 50 --seed 0 --video 2 --language --no-oracle --suite events --num-envs 1 --quiet
  cp "$P/compare/comparison.json" benchmarks/results/robustness-events-pixels-pick-place.json
fi
