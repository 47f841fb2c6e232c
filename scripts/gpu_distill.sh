#!/usr/bin/env bash
# Distils the bundled shapes model into few-step students on one GPU and reads their collapse
# with the probe: the run that makes the bundled `shapes-student` (jaxsteer/shapes/distill.py).
# Two DMD variants side by side (each its own process and share of GPU memory, training until
# RESERVE_S before the deadline, compile included; then the collapse table of
# jaxsteer/shapes/collapse.py), everything under one deadline (DEADLINE_S, 470 s: under 8
# minutes). Run one after the other (the first in 2026-12-02's call, beside three other jobs,
# spent its whole 170 s compiling and trained one step), each got too little time.
#
#   OUT=/some/dir bash scripts/gpu_distill.sh        # from the repo root or anywhere
#
# Writes under $OUT: distill.log (both trainings and the table), collapse.json (teacher vs
# each student vs diversity distillation on the same seeds, and the chosen student),
# student.tar.gz (the chosen student's pipeline folder), <other variant>.tar.gz, gpu.txt.
# Install the chosen one (then commit jaxsteer/assets/shapes-student and the checksums):
#   tar xzf student.tar.gz && python3 -m jaxsteer.shapes.assets install-student <its folder>
# TEACHER, RESERVE_S, DEADLINE_S, BATCH, N, DTYPE and MEM (each variant's GPU memory share)
# override the defaults. The CPU dry run of the plumbing (random micro teacher, then one after
# the other; 988 s on 2 shared cores): TEACHER=<micro folder> RESERVE_S=300 DEADLINE_S=1400
# BATCH=4 N=8 DTYPE=float32.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} PYTHONUNBUFFERED=1
MEM=${MEM:-0.1}
DEADLINE_S=${DEADLINE_S:-470}
RESERVE_S=${RESERVE_S:-140}   # kept for the collapse table and the tarballs
BATCH=${BATCH:-128}
N=${N:-256}                   # seeds per prompt of the collapse table
DTYPE=${DTYPE:-bfloat16}      # the UNets' activations while training (the teacher's own)
TEACHER=${TEACHER:-}          # a teacher pipeline folder; default: the bundled shapes model
WORK=${WORK:-/tmp/jaxsteer-distill}
LOG="$OUT/distill.log"
rm -rf "$WORK" && mkdir -p "$WORK" && : > "$LOG"
start=$(date +%s)
left() { echo $(( DEADLINE_S - ($(date +%s) - start) )); }
cap() { local want=$1 l; l=$(left); l=$(( want < l ? want : l )); echo $(( l > 1 ? l : 1 )); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  > "$OUT/gpu.txt" 2>&1
teacher=(); [ -n "$TEACHER" ] && teacher=(--teacher "$TEACHER")
common=(--no-progress --log-every 100 --checkpoint-every 1000000 --steps 1000000
        --batch "$BATCH" --dmd.compute-dtype "$DTYPE" "${teacher[@]}")

distill() {   # NAME FLAGS...: one variant, until RESERVE_S before the deadline. SIGTERM (30 s
  local name=$1 seconds; shift      # past its time) stops it after the step it is in, exported;
  seconds=$(( $(left) - RESERVE_S ))  # KILL 30 s after that
  echo "== $name: $seconds s, $* (at $(( $(date +%s) - start )) s)" | tee -a "$LOG"
  XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM timeout -k 30 "$(cap $(( seconds + 30 )))" \
    python3 -m jaxsteer.cli distill-shapes "$WORK/$name" "${common[@]}" \
    --time-limit-s "$seconds" "$@" > "$WORK/$name.log" 2>&1
  echo "== $name exit $? at $(( $(date +%s) - start )) s" >> "$WORK/$name.log"
}
# DMD2's 4-step student without TTUR or regression: the fake score as fast as the student.
distill dmd4 --student.steps 4 --dmd.lr 1e-4 --dmd.fake-lr 1e-4 &
# The same with a fake score at a tenth of the student's rate: it lags, which keeps a collapse
# (tests/shapes/test_distill.py).
distill dmd4lag --student.steps 4 --dmd.lr 1e-4 --dmd.fake-lr 1e-5 &
wait
cat "$WORK"/dmd*.log | grep -v -e "^W[0-9]" >> "$LOG"

students=$(for d in "$WORK"/dmd*; do [ -f "$d/model_index.json" ] && printf '%s,' "$d"; done)
if [ -z "$students" ]; then echo "no student was exported; see $LOG" | tee -a "$LOG"; exit 1; fi
echo "== collapse table (at $(( $(date +%s) - start )) s)" | tee -a "$LOG"
timeout "$(cap $(( $(left) - 15 )))" python3 -m jaxsteer.shapes.collapse \
  --students "${students%,}" --n "$N" ${TEACHER:+--teacher "$TEACHER"} \
  --out "$OUT/collapse.json" 2>&1 | grep -v Warning | tee -a "$LOG"
chosen=$(python3 -c "import json; print(json.load(open('$OUT/collapse.json'))['chosen'])" \
         2>/dev/null || echo dmd4)
for d in "$WORK"/dmd*; do
  name=$(basename "$d"); [ -f "$d/model_index.json" ] || continue
  tar czf "$OUT/$([ "$name" = "$chosen" ] && echo student || echo "$name").tar.gz" \
    -C "$WORK" "$name"
done
echo "chosen $chosen; done in $(( $(date +%s) - start )) s" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
