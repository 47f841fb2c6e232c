#!/usr/bin/env bash
# The pre-registered test-split runs at gpu scale on one H200, side by side (< 10 minutes a
# command; repeat it to continue): the authors' default method (first step, word row, raw),
# where the README predicts Spearman(participation ratio, free factors) <= -0.8, and the
# headline method (t500_all). Each run resumes from $GT_RESUME_FROM/<its name>/ when that holds
# its partial JSON (carry the folders a previous command returned). Results: $OUT/first/ and
# $OUT/t500_all/, each a JSON and groundtruth.log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-runs/gpu_test_split}
export GT_LIMIT=${GT_LIMIT:-520}
for name in first t500_all; do
  resume=${GT_RESUME_FROM:+$GT_RESUME_FROM/$name}
  [ -n "$resume" ] && [ -z "$(ls "$resume"/*.json 2>/dev/null)" ] && resume=""
  GT_SPLIT=test GT_CONFIG=$name GT_MEM=0.45 GT_RESUME_FROM=$resume OUT=$OUT/$name \
    bash scripts/gpu_groundtruth.sh &
done
wait
