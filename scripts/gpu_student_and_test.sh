#!/usr/bin/env bash
# Two ground-truth jobs side by side on one H200 (< 10 minutes), each through gpu_groundtruth.sh:
#  a) the headline (t500_all) on the test split at gpu scale, resumed from the partial JSONs in
#     $GT_RESUME_FROM (default runs/resume; carry it), so the pre-registered test run completes;
#  b) the diversity section with the distilled student (shapes-student) as the collapsed
#     generator, on both splits at cpu scale: the random-offset scales are chosen on tune and
#     reported on test, next to the diversity-distillation baseline (dd1).
# Results: $OUT/a/*.json, $OUT/b/*.json and each job's groundtruth.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-runs/gpu_student_and_test}
export GT_LIMIT=${GT_LIMIT:-540}
GT_SPLIT=test GT_CONFIG=t500_all GT_RESUME_FROM=${GT_RESUME_FROM:-runs/resume} GT_MEM=0.5 \
  OUT=$OUT/a bash scripts/gpu_groundtruth.sh &
GT_SPLIT="tune test" GT_CONFIGS=t500_all GT_MEM=0.2 OUT=$OUT/b GT_FLAGS="--groundtruth.scale cpu
  --groundtruth.turbo shapes-student --groundtruth.baseline-steps 1
  --groundtruth.diversity-scales 0.25,0.5,1" bash scripts/gpu_groundtruth.sh &
wait
