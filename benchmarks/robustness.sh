#!/usr/bin/env bash
# Robustness (issue 13). Part 1: bc-state trained nominally vs with domain randomisation
# (physical, sensing, actuation, language; magnitudes drawn up to MAGNITUDE, default 0.5, from
# the training bands), 3 training seeds, through the `all` suite (every factor x low/middle/high,
# all combined) and the world events; the scripted expert as reference. Another MAGNITUDE needs
# another WORK (the DR demos differ); so do DEMOS (200), JOINT (0: the share of DR episodes drawing
# one magnitude for every factor), SUITE (all) and EPISODES (20), e.g. the rows that meet the
# combined target: WORK=runs/robustness-d2000-j0.5 DEMOS=2000 JOINT=0.5 SUITE=middle EPISODES=40.
# `--language all` is how those rows were measured (the
# demos then include the held-out paraphrase templates; bc-state reads words through a parser).
# Part 2 (PIXELS=1): the pixel agents on perceived objects, end-to-end (bc-keypoints) and
# hierarchical (hierarchical-keypoints), 1,000 pick-place demos each (language=train), nominal
# vs domain-randomised in every family (visual included; half of the DR episodes draw one
# magnitude for every factor, --joint 0.5), PIXEL_SEEDS (default 0,1,2), through the `middle`
# suite (every factor at the middle magnitude, and all combined) and the world events; then the
# seed-0 agents through the `families` suite (each family combined), and the shipped agents
# through the world events on 50 episodes.
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
  D="${DEMOS:-200}" J="${JOINT:-0}" TAG="dr$M"
  if [ "$D" != 200 ] || [ "$J" != 0 ]; then TAG="dr$M-d$D-joint$J"; fi
  $PY -m embodied bench robustness --out "$WORK" --task pick-place --demos "$D" --seeds 0,1,2 \
    --suite "${SUITE:-all}" --episodes "${EPISODES:-20}" --magnitude "$M" --joint "$J" \
    --language all --quiet
  for ext in json md; do
    cp "$WORK/robustness.$ext" "benchmarks/results/robustness-bc-state-$TAG-pick-place.$ext"
  done
  cp "$WORK/robustness_heatmap.png" "benchmarks/results/robustness-bc-state-$TAG-pick-place.png"
  exit 0
fi
P="${PIXEL_WORK:-runs/robustness-pixels}"
for KIND in bc-keypoints hierarchical-keypoints; do
  $PY -m embodied bench robustness --kind "$KIND" --out "$P/$KIND" --task pick-place \
    --demos 1000 --seeds "${PIXEL_SEEDS:-0,1,2}" --suite middle --episodes 20 --magnitude "$M" \
    --joint 0.5 --workers 2 --num-envs 2 --quiet
  for ext in json md; do
    cp "$P/$KIND/robustness.$ext" "benchmarks/results/robustness-$KIND-dr$M-pick-place.$ext"
  done
  cp "$P/$KIND/robustness_heatmap.png" "benchmarks/results/robustness-$KIND-dr$M-pick-place.png"
done
for KIND in bc-keypoints hierarchical-keypoints; do
  for V in nominal-s0 dr-s0; do
    $PY -m embodied eval --agent "$P/$KIND/runs/$V" --task pick-place --suite families \
      --episodes 20 --out "$P/families/$KIND-$V" --quiet
  done
  $PY -m embodied eval --agent "assets/agents/$KIND-pick-place" --task pick-place --suite events \
    --episodes 50 --out "$P/events50/$KIND" --quiet
done
# one file: the families rows of the seed-0 agents and the 50-episode events of the shipped ones
$PY - "$P" benchmarks/results/robustness-keypoints-extras-pick-place.json <<'PYEOF'
import json, sys
from pathlib import Path
p, out = Path(sys.argv[1]), Path(sys.argv[2])
read = lambda d: {k: v for k, v in json.loads((d / "robustness.json").read_text()).items() if k != "agent"}
result = {
    "families_suite_seed0": {d.name: read(d) for d in sorted((p / "families").iterdir())},
    "events_50_shipped_agents": {d.name: read(d) for d in sorted((p / "events50").iterdir())},
}
out.write_text(json.dumps(result, indent=1) + "\n")
PYEOF
