#!/usr/bin/env bash
# One device call (under 10 minutes) of the runs that need no result of each other, side by side
# on one H200 (16 cores): the shapes-student distillation (scripts/gpu_distill.sh), ground-truth
# runs on the tuning split (scripts/gpu_groundtruth.sh, GT_CONFIGS), the full-size UNet
# comparison against diffusers (scripts/gpu_compare_full.py) and the interop round trip on the
# CPU (scripts/interop_roundtrip.py). GPU memory is split by XLA_PYTHON_CLIENT_MEM_FRACTION; the
# comparison allocates on demand from what is left. The device returns at most 8 files, so
# everything but the student's folder comes back in one tarball, science.tgz:
#
#   OUT=... bash scripts/gpu_science.sh      # then: tar xzf science.tgz; student.tar.gz
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
W=/tmp/science
rm -rf "$W" && mkdir -p "$OUT" "$W"/{distill,gt,compare,interop}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
start=$(date +%s)

XLA_PYTHON_CLIENT_MEM_FRACTION=${DISTILL_MEM:-0.18} OUT=$W/distill \
  bash scripts/gpu_distill.sh > "$W/distill.out" 2>&1 &
GT_CONFIGS=${GT_CONFIGS:-t500_all first mix3_all} GT_MEM=${GT_MEM:-0.12} OUT=$W/gt \
  bash scripts/gpu_groundtruth.sh > "$W/gt.out" 2>&1 &
( export PYTHONPATH=/tmp/site2:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.4 timeout "${T_COMPARE:-400}" \
    python3 scripts/gpu_compare_full.py --out "$W/compare/compare.json" > "$W/compare/log.txt" 2>&1
  echo "compare exit $? (124 = timed out)" >> "$W/compare/log.txt" ) &
( PYTHONPATH=/tmp/site2:$PWD OMP_NUM_THREADS=4 JAX_PLATFORMS=cpu timeout "${T_INTEROP:-150}" \
    python3 scripts/interop_roundtrip.py --out "$W/interop" > "$W/interop/log.txt" 2>&1
  echo "interop exit $? (124 = timed out)" >> "$W/interop/log.txt" ) &
wait
echo "all done in $(( $(date +%s) - start )) s" | tee "$W/done.txt"
[ -f "$W/distill/student.tar.gz" ] && mv "$W/distill/student.tar.gz" "$OUT/"
tar czf "$OUT/science.tgz" --exclude='*.tar.gz' -C "$W" .
tail -5 "$W/distill/distill.log" "$W/gt/groundtruth.log" "$W/compare/log.txt" "$W/interop/log.txt"
ls -la "$OUT"
