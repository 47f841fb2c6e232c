#!/usr/bin/env bash
# Distils the bundled shapes model into few-step students on one GPU and reads their collapse
# with the probe: the run that makes the bundled `shapes-student` (jaxsteer/shapes/distill.py).
# Two DMD variants (the first TRAIN_S seconds, compile included; the second what is left of the
# deadline after RESERVE_S for the collapse table of jaxsteer/shapes/collapse.py), everything
# under one deadline (DEADLINE_S, 470 s: under 8 minutes).
#
#   OUT=/some/dir bash scripts/gpu_distill.sh        # from the repo root or anywhere
#
# Writes under $OUT: distill.log (both trainings and the table), collapse.json (teacher vs
# each student vs diversity distillation on the same seeds, and the chosen student),
# student.tar.gz (the chosen student's pipeline folder), <other variant>.tar.gz, gpu.txt.
# Install the chosen one (then commit jaxsteer/assets/shapes-student and the checksums):
#   tar xzf student.tar.gz && python3 -m jaxsteer.shapes.assets install-student <its folder>
# TEACHER, TRAIN_S, RESERVE_S, DEADLINE_S, BATCH, N and DTYPE override the defaults. The CPU dry
# run of the plumbing (random micro teacher; 988 s on 2 shared cores): TEACHER=<micro folder>
# TRAIN_S=250 RESERVE_S=300 DEADLINE_S=1400 BATCH=4 N=8 DTYPE=float32.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} PYTHONUNBUFFERED=1
TRAIN_S=${TRAIN_S:-170}       # seconds of training of the first variant, its compile included
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

distill() {   # NAME SECONDS FLAGS...: one variant. SIGTERM (60 s past its time) stops it after
  local name=$1 seconds=$2; shift 2   # the step it is in, exported; KILL 60 s after that
  echo "== $name: $seconds s, $* (at $(( $(date +%s) - start )) s)" | tee -a "$LOG"
  timeout -k 60 "$(cap $(( seconds + 60 )))" python3 -m jaxsteer.cli distill-shapes \
    "$WORK/$name" "${common[@]}" --time-limit-s "$seconds" "$@" >> "$LOG" 2>&1
  echo "== $name exit $? at $(( $(date +%s) - start )) s" | tee -a "$LOG"
}
# 2 steps start collapsed (the teacher's 2-step samples spread 0.6x its own); a fake score at a
# tenth of the student's rate lags, which keeps a collapse (tests/shapes/test_distill.py).
distill dmd2 "$TRAIN_S" --student.steps 2 --dmd.lr 1e-4 --dmd.fake-lr 1e-5
# DMD2's 4-step student without TTUR or regression: the fake score as fast as the student.
distill dmd4 "$(( $(left) - RESERVE_S - 20 ))" --student.steps 4 --dmd.lr 1e-4 --dmd.fake-lr 1e-4

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
