#!/usr/bin/env bash
# One device call (under 10 minutes) of jobs that need no result of each other, side by side on
# one H200 (16 cores). JOBS picks them (default "distill gt compare interop"):
#   distill  the shapes-student distillation and its collapse table (scripts/gpu_distill.sh)
#   gt       ground-truth runs (scripts/gpu_groundtruth.sh; GT_SPLIT, GT_CONFIGS, GT_FLAGS)
#   compare  the full-size UNets against diffusers (scripts/gpu_compare_full.py)
#   interop  the export round trip through diffusers, on the CPU (scripts/interop_roundtrip.py)
#   suite    the accelerator suite (scripts/gpu_suite.sh, SUITE_WORKERS workers)
# GPU memory is split by XLA_PYTHON_CLIENT_MEM_FRACTION (*_MEM); the comparison allocates on
# demand from what is left. The device returns at most 8 files, so everything but the student's
# folder comes back in one tarball, science.tgz:
#
# Measured on 2026-12-02 (results/2026-12-02/README.md): side by side, everything slows. The
# suite reached 20 of its 28 tests in 545 s (alone it took 471 s on 6 workers), the DMD
# run's first 100 steps took 322 s and its next 62 took 8 s, the full-size comparison ran out of
# memory.
# Run the suite alone, and the distillation alone.
#
#   OUT=... JOBS="suite gt distill" bash scripts/gpu_science.sh
#   # then here: tar xzf science.tgz; student.tar.gz holds the chosen student's folder
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
W=/tmp/science
JOBS=" ${JOBS:-distill gt compare interop} "
rm -rf "$W" && mkdir -p "$OUT" "$W"/{distill,gt,compare,interop,suite}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
start=$(date +%s)
has() { [[ $JOBS == *" $1 "* ]]; }

has distill && MEM=${DISTILL_MEM:-0.09} OUT=$W/distill \
  bash scripts/gpu_distill.sh > "$W/distill.out" 2>&1 &
has gt && GT_CONFIGS=${GT_CONFIGS:-t500_all first mix3_all} GT_MEM=${GT_MEM:-0.12} OUT=$W/gt \
  bash scripts/gpu_groundtruth.sh > "$W/gt.out" 2>&1 &
has suite && XLA_PYTHON_CLIENT_MEM_FRACTION=${SUITE_MEM:-0.08} SKIP_DEMO=1 OUT=$W/suite \
  SUITE_TIMEOUT=${SUITE_TIMEOUT:-540} bash scripts/gpu_suite.sh -n "${SUITE_WORKERS:-6}" \
  > "$W/suite.out" 2>&1 &
if has compare; then
  ( export PYTHONPATH=/tmp/site2:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.4 timeout "${T_COMPARE:-400}" \
      python3 scripts/gpu_compare_full.py --out "$W/compare/compare.json" \
      > "$W/compare/log.txt" 2>&1
    echo "compare exit $? (124 = timed out)" >> "$W/compare/log.txt" ) &
fi
if has interop; then
  ( PYTHONPATH=/tmp/site2:$PWD OMP_NUM_THREADS=4 JAX_PLATFORMS=cpu timeout "${T_INTEROP:-150}" \
      python3 scripts/interop_roundtrip.py --out "$W/interop" > "$W/interop/log.txt" 2>&1
    echo "interop exit $? (124 = timed out)" >> "$W/interop/log.txt" ) &
fi
wait
echo "all done in $(( $(date +%s) - start )) s" | tee "$W/done.txt"
[ -f "$W/distill/student.tar.gz" ] && mv "$W/distill/student.tar.gz" "$OUT/"
tar czf "$OUT/science.tgz" --exclude='*.tar.gz' -C "$W" .
for f in "$W"/distill/distill.log "$W"/gt/groundtruth.log "$W"/compare/log.txt \
         "$W"/interop/log.txt "$W"/suite/gpu_suite.log; do
  [ -f "$f" ] && { echo "## $f"; grep -v -e "^W[0-9]" -e Warning "$f" | tail -n 8; }
done
ls -la "$OUT"
