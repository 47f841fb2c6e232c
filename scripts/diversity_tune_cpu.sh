#!/usr/bin/env bash
# The diversity section alone, on the TUNING split at cpu scale, for both worlds side by side
# against their distilled students (shapes-student, scenes-student), at several fractions of the
# random-offset strength: what the tuning split says about the strength / fidelity trade-off
# with the fixed kernel. The complexity and recovery sections shrink to the smallest run the
# config accepts (2 complexity prompts, 1 recovery prompt, no convergence); their numbers are
# not read. Results: $OUT/<split>.<world>.json and .log (2-core CPU; ~10 minutes). SPLIT=test
# runs the same on the test split, once the tuning split's table is read.
# MODE=gaussian draws the offsets over every direction at once (--groundtruth.diversity-mode).
# SCALE (default cpu) is --groundtruth.scale; MEM sets each run's share of GPU memory and LIMIT
# each run's seconds (scripts/gpu_diversity.sh sets them for the H200).
#   OUT=/some/dir SCALES=0.25,0.5,0.75 bash scripts/diversity_tune_cpu.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-runs/diversity_tune}
mkdir -p "$OUT"
split=${SPLIT:-tune}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
[ -n "${MEM:-}" ] && export XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM
for world in ${WORLDS:-shapes scenes}; do
  prompts=$(python3 -c "
from jaxsteer.benchmarks.groundtruth.split import complexity_prompts
ps = complexity_prompts('$split', 1, '$world')
print(ps[0]); print(ps[-1])")
  mapfile -t two <<< "$prompts"   # list flags are comma-separated
  timeout --signal=TERM "${LIMIT:-0}" python3 -m jaxsteer.cli bench groundtruth \
    --groundtruth.world "$world" \
    --groundtruth.scale "${SCALE:-cpu}" --groundtruth.split "$split" --groundtruth.prompts "${two[0]},${two[1]}" \
    --groundtruth.recovery-prompts "${two[1]}" --groundtruth.convergence-prompts 0 \
    --groundtruth.diversity-scales "${SCALES:-0.25,0.5,0.75}" \
    --groundtruth.diversity-mode "${MODE:-uniform}" \
    --groundtruth.out "$OUT/$split.$world.json" > "$OUT/$split.$world.log" 2>&1 &
done
wait
grep -h -A12 "^sampler" "$OUT/$split".*.log
