#!/usr/bin/env bash
# The headline comparison: six tasks x every agent row (end-to-end VLA, hierarchical VLA, the
# hierarchical VLA under the oracle System 2, the keypoint agents with parsed language, bc-state
# on privileged state) x 3 training seeds, one command (`bench headline`, embodied/bench/headline.py).
#
#   benchmarks/headline.sh            from nothing: per task 1,000 demos (noise 0.1, reach 0.3;
#                                     language=train), per kind and seed a single-task network
#                                     for reach, push, pick-place and stack and one six-task
#                                     network, then every cell: nominal (50 episodes), held-out
#                                     language, the middle and events suites (20 per cell)
#   benchmarks/headline.sh --quick    the shipped agents (assets/agents) and a bc-state row
#                                     trained here on 200 state demos per task (a few minutes),
#                                     one seed, 10 episodes per cell, nominal and held-out language
#   benchmarks/headline.sh --ray      training fans out over a Ray cluster (train agent --ray)
#
# Resumable: collection, training and every measured cell resume after a kill. Writes
# WORK/headline/headline.{json,md,png} and copies them to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh dev
WORK="${WORK:-runs/headline}"
PY="${PY:-.venv/bin/python}"
SEEDS="${SEEDS:-0 1 2}"
QUICK=0 RAY=()
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --ray) RAY=(--ray) ;;
    *) echo "headline.sh: unknown option $arg (accepted: --quick, --ray)" >&2; exit 2 ;;
  esac
done
START=$(date +%s)
if [ "$QUICK" = 1 ]; then
  STATE=()
  for TASK in reach push pick-place stack sort chain; do
    $PY -m embodied collect --task "$TASK" --episodes 200 --seed 100000 --noise 0.1 --workers 2 \
      --obs-mode state --set language=train --out "$WORK-quick/data/$TASK" --quiet > /dev/null
    STATE+=("$WORK-quick/data/$TASK")
  done
  $PY -m embodied train agent --kind bc-state --data "${STATE[@]}" --seeds 0 \
    --out "$WORK-quick/runs/bc-state/six-tasks" --threads 1 --quiet
  $PY -m embodied bench headline --runs "$WORK-quick/runs" --shipped --seeds 0 \
    --out "$WORK-quick/headline" --episodes 10 --language-episodes 5 --parts nominal language
  OUT="$WORK-quick/headline"
else
  KINDS="${KINDS:-end-to-end hierarchical bc-keypoints hierarchical-keypoints bc-state}"
  SIX=()
  for TASK in reach push pick-place stack sort chain; do
    NOISE=0.1
    [ "$TASK" = reach ] && NOISE=0.3
    $PY -m embodied collect --task "$TASK" --episodes "${DEMOS:-1000}" --seed 100000 \
      --noise "$NOISE" --workers 2 --set language=train --out "$WORK/data/$TASK" --quiet > /dev/null
    SIX+=("$WORK/data/$TASK")
  done
  for KIND in $KINDS; do
    for TASK in reach push pick-place stack; do
      # shellcheck disable=SC2086
      $PY -m embodied train agent --kind "$KIND" --data "$WORK/data/$TASK" \
        --out "$WORK/runs/$KIND/$TASK" --seeds $SEEDS "${RAY[@]}" --threads 1 --quiet
    done
    # shellcheck disable=SC2086
    $PY -m embodied train agent --kind "$KIND" --data "${SIX[@]}" \
      --out "$WORK/runs/$KIND/six-tasks" --seeds $SEEDS "${RAY[@]}" --threads 1 --quiet
  done
  # shellcheck disable=SC2086
  $PY -m embodied bench headline --runs "$WORK/runs" --seeds $SEEDS --out "$WORK/headline" \
    --episodes "${EPISODES:-50}" --suite-episodes "${SUITE_EPISODES:-20}"
  OUT="$WORK/headline"
fi
echo "wall time: $(( ($(date +%s) - START) / 60 )) min"
SUFFIX=""
[ "$QUICK" = 1 ] && SUFFIX="-quick"
for EXT in json md png; do cp "$OUT/headline.$EXT" "benchmarks/results/headline$SUFFIX.$EXT"; done
