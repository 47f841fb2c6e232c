#!/usr/bin/env bash
# scripts/diversity_tune_cpu.sh at gpu scale (6 prompts, 8 seeds, pools of 1,024, 4,096
# gradients), both worlds side by side on one GPU, each with MEM of its memory and LIMIT
# seconds, at SCALES x the offset strength (default 0.25, the headline, and 0.5, the scenes pick
# of the cpu-scale tuning split; x1 always runs). One < 10-minute command on the H200; each run
# writes its JSON after each prompt, so a cut keeps what finished. MODE as there.
#   SPLIT=test OUT=$OUT bash scripts/gpu_diversity.sh
# Results: $OUT/<split>.<world>.json and .log.
cd "$(dirname "$0")/.." || exit 1
SCALE=gpu SPLIT=${SPLIT:-test} SCALES=${SCALES:-0.25,0.5} MEM=${MEM:-0.45} LIMIT=${LIMIT:-520} \
  JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} OUT=${OUT:-runs/gpu_diversity} \
  exec bash scripts/diversity_tune_cpu.sh
