#!/usr/bin/env bash
# Robustness (issue 13). Part 1: bc-state trained nominally vs with domain randomisation
# (physical, sensing, actuation, language; magnitudes drawn up to MAGNITUDE, default 0.5, from
# the training bands), 3 training seeds, through the `all` suite (every factor x low/middle/high,
# all combined) and the world events; the scripted expert as reference. Another MAGNITUDE needs
# another WORK (the DR demos differ). `--language all` is how those rows were measured (the
# demos then include the held-out paraphrase templates; bc-state reads words through a parser).
# Part 2 (PIXELS=1): the pixel agents on perceived objects, end-to-end (bc-keypoints) and
# hierarchical (hierarchical-keypoints), 1,000 pick-place demos each (language=train), nominal
# vs domain-randomised in every family (visual included), PIXEL_SEEDS (default 0), through the
# `middle` suite (every factor at the middle magnitude, and all combined) and the world events.
# Copying assets/agents/<kind>-pick-place/{agent.pt,train.json} into
# $PIXEL_WORK/<kind>/runs/nominal-s0/ skips retraining the seed-0 nominal agents (the same
# command made them). Resumable: rerun after a kill. Run nothing else meanwhile (2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
PY=.venv/bin/python
WORK="${WORK:-runs/robustness}"
M="${MAGNITUDE:-0.5}"
mkdir -p benchmarks/results
if [ "${PIXELS:-0}" != 1 ]; then
  $PY -m embodied bench robustness --out "$WORK" --task pick-place --demos 200 --seeds 0,1,2 \
    --suite all --episodes 20 --magnitude "$M" --language all --quiet
  for ext in json md; do
    cp "$WORK/robustness.$ext" "benchmarks/results/robustness-bc-state-dr$M-pick-place.$ext"
  done
  cp "$WORK/robustness_heatmap.png" "benchmarks/results/robustness-bc-state-dr$M-pick-place.png"
  exit 0
fi
P="${PIXEL_WORK:-runs/robustness-pixels}"
for KIND in bc-keypoints hierarchical-keypoints; do
  $PY -m embodied bench robustness --kind "$KIND" --out "$P/$KIND" --task pick-place \
    --demos 1000 --seeds "${PIXEL_SEEDS:-0}" --suite middle --episodes 20 --magnitude "$M" \
    --workers 2 --num-envs 2 --quiet
  for ext in json md; do
    cp "$P/$KIND/robustness.$ext" "benchmarks/results/robustness-$KIND-dr$M-pick-place.$ext"
  done
  cp "$P/$KIND/robustness_heatmap.png" "benchmarks/results/robustness-$KIND-dr$M-pick-place.png"
done
