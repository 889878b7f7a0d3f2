#!/usr/bin/env bash
# Can a learner imitate the experts? bc-state (200 and 1,000 demos; DAgger 3 x 50 rollouts on
# 200) on every task, 50 held-out seeds each; resumable (rerun continues where it stopped).
# bc-pixels (slow on a CPU) is opt-in: PIXEL_TASKS=pick-place PIXEL_DEMOS=1000 [DEVICE=auto].
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
OUT="${OUT:-runs/learnability}"
extra=()
if [ -n "${PIXEL_TASKS:-}" ]; then
  extra+=(--pixel-tasks "$PIXEL_TASKS" --pixel-demos "${PIXEL_DEMOS:-1000}" --device "${DEVICE:-cpu}")
  [ -n "${PIXEL_STEPS:-}" ] && extra+=(--pixel-steps "$PIXEL_STEPS")
fi
.venv/bin/python -m embodied bench learnability --tasks "${TASKS:-all}" --demos "${DEMOS:-200,1000}" \
  --dagger 3 --dagger-episodes 50 --episodes 50 --out "$OUT" --quiet "${extra[@]}"
mkdir -p benchmarks/results
cp "$OUT/learnability.json" "$OUT/learnability.md" benchmarks/results/
