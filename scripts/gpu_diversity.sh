#!/usr/bin/env bash
# The diversity section alone at gpu scale (6 prompts, 8 seeds, pools of 1,024, 4,096
# gradients) for both worlds side by side on one GPU, against their distilled students
# (shapes-student, scenes-student), at SCALES x the offset strength (default 0.25, the
# headline, and 0.5, the scenes pick of the cpu-scale tuning split; x1 always runs). The
# complexity and recovery sections shrink to the smallest run the config accepts (2 complexity
# prompts, 1 recovery prompt, no convergence); their numbers are not read. One < 10-minute
# command on the H200; each run writes its JSON after each prompt, so a cut keeps what finished.
#   SPLIT=test OUT=$OUT bash scripts/gpu_diversity.sh
# Results: $OUT/<split>.<world>.json and .log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-runs/gpu_diversity}
mkdir -p "$OUT"
split=${SPLIT:-test}
export PYTHONPATH=$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}
for world in ${WORLDS:-shapes scenes}; do
  prompts=$(python3 -c "
from jaxsteer.benchmarks.groundtruth.split import complexity_prompts
ps = complexity_prompts('$split', 1, '$world')
print(ps[0]); print(ps[-1])")
  mapfile -t two <<< "$prompts"   # list flags are comma-separated
  XLA_PYTHON_CLIENT_MEM_FRACTION=${MEM:-0.45} timeout --signal=TERM "${LIMIT:-520}" \
    python3 -m jaxsteer.cli bench groundtruth --groundtruth.world "$world" \
    --groundtruth.scale gpu --groundtruth.split "$split" --groundtruth.prompts "${two[0]},${two[1]}" \
    --groundtruth.recovery-prompts "${two[1]}" --groundtruth.convergence-prompts 0 \
    --groundtruth.diversity-scales "${SCALES:-0.25,0.5}" \
    --groundtruth.out "$OUT/$split.$world.json" > "$OUT/$split.$world.log" 2>&1 &
done
wait
grep -h -A12 "^sampler" "$OUT/$split".*.log
