#!/usr/bin/env bash
# Distils a bundled world model (WORLD=shapes, the default, or WORLD=scenes) into few-step
# students on one GPU and reads their collapse with the world's probe: the run that makes the
# bundled `shapes-student` / `scenes-student` (jaxsteer/distill/run.py).
#
# Next: the scenes student, one variant with the GPU to itself, in one ~9-minute call:
#   WORLD=scenes VARIANTS=dmd4 DEADLINE_S=540 RESERVE_S=150 OUT=... bash scripts/gpu_distill.sh
# then, here: tar xzf student.tar.gz && python3 -m jaxsteer.scenes.assets install-student dmd4
# (commit jaxsteer/assets/scenes-student and jaxsteer/scenes/student_checksums.py).
#
# VARIANTS (default dmd4 dmd4lag) train side by side, each its own process and share of GPU
# memory, until RESERVE_S before the deadline (compile included); then the collapse table of
# jaxsteer/distill/collapse.py; everything under one deadline (DEADLINE_S, 470 s). Measured on
# 2026-12-02, beside the GPU suite and two ground-truth runs, at batch 128: the first 100 steps
# (the compile among them) took 322 s, the next 62 took 8 s (~8 steps/s once compiled); the
# 162-step student read spread 0.59x the teacher's at fidelity 0.09 (half-way, not yet a
# sampler; CPU collapse table, 48 seeds). Give it the GPU alone:
#   VARIANTS=dmd4 DEADLINE_S=560 RESERVE_S=120 OUT=... bash scripts/gpu_distill.sh
#
#   OUT=/some/dir bash scripts/gpu_distill.sh        # from the repo root or anywhere
#
# Writes under $OUT: distill.log (both trainings and the table), collapse.json (teacher vs
# each student vs diversity distillation on the same seeds, and the chosen student),
# student.tar.gz (the chosen student's pipeline folder), <other variant>.tar.gz, gpu.txt.
# Install the chosen one (then commit jaxsteer/assets/$WORLD-student and the checksums):
#   tar xzf student.tar.gz && python3 -m jaxsteer.$WORLD.assets install-student <its folder>
# TEACHER (a pipeline folder of the WORLD; default: its bundled model), RESERVE_S, DEADLINE_S,
# BATCH, N, DTYPE, MEM (each variant's GPU memory share) and COLLAPSE_MEM override the defaults. The CPU dry run of the plumbing (random micro teacher,
# then one after the other; 988 s on 2 shared cores): TEACHER=<micro folder> RESERVE_S=300
# DEADLINE_S=1400 BATCH=4 N=8 DTYPE=float32.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} PYTHONUNBUFFERED=1
MEM=${MEM:-0.1}               # each variant's share of GPU memory
VARIANTS=${VARIANTS:-dmd4 dmd4lag}
DEADLINE_S=${DEADLINE_S:-470}
RESERVE_S=${RESERVE_S:-140}   # kept for the collapse table and the tarballs
BATCH=${BATCH:-128}
N=${N:-256}                   # seeds per prompt of the collapse table
DTYPE=${DTYPE:-bfloat16}      # the UNets' activations while training (the teacher's own)
WORLD=${WORLD:-shapes}        # shapes | scenes: the bundled teacher, its captions and probe
TEACHER=${TEACHER:-$WORLD}    # a teacher pipeline folder of WORLD; default: its bundled model
WORK=${WORK:-/tmp/jaxsteer-distill}
LOG="$OUT/distill.log"
rm -rf "$WORK" && mkdir -p "$WORK" && : > "$LOG"
start=$(date +%s)
left() { echo $(( DEADLINE_S - ($(date +%s) - start) )); }
cap() { local want=$1 l; l=$(left); l=$(( want < l ? want : l )); echo $(( l > 1 ? l : 1 )); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  > "$OUT/gpu.txt" 2>&1
common=(--no-progress --log-every 100 --checkpoint-every 1000000 --steps 1000000
        --batch "$BATCH" --dmd.compute-dtype "$DTYPE" --teacher "$TEACHER" --world "$WORLD")

distill() {   # NAME FLAGS...: one variant, until RESERVE_S before the deadline. Its training
  local name=$1 seconds; shift  # loop stops 60 s earlier (the process's start, the export and
  seconds=$(( $(left) - RESERVE_S ))  # its exit: 30 s was too little on 2026-12-02); SIGTERM at
  echo "== $name: $seconds s, $* (at $(( $(date +%s) - start )) s)" | tee -a "$LOG"  # the end
  XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM timeout -k 30 "$(cap "$seconds")" \
    python3 -m jaxsteer.cli distill-shapes "$WORK/$name" "${common[@]}" \
    --time-limit-s "$(( seconds - 60 ))" "$@" > "$WORK/$name.log" 2>&1
  echo "== $name exit $? at $(( $(date +%s) - start )) s" >> "$WORK/$name.log"
}
# dmd4: DMD2's 4-step student without TTUR or regression, the fake score as fast as the student.
# dmd4lag: the same with a fake score at a tenth of the student's rate: it lags, which keeps a
# collapse (tests/distill/test_dmd.py). VARIANTS picks (one alone gets the GPU to itself).
declare -A FLAGS=([dmd4]="--dmd.fake-lr 1e-4" [dmd4lag]="--dmd.fake-lr 1e-5")
for v in $VARIANTS; do
  # shellcheck disable=SC2086  # the flags are meant to split into words
  distill "$v" --student.steps 4 --dmd.lr 1e-4 ${FLAGS[$v]} &
done
wait
cat "$WORK"/dmd*.log | grep -v -e "^W[0-9]" >> "$LOG"

students=$(for d in "$WORK"/dmd*; do [ -f "$d/model_index.json" ] && printf '%s,' "$d"; done)
if [ -z "$students" ]; then echo "no student was exported; see $LOG" | tee -a "$LOG"; exit 1; fi
echo "== collapse table (at $(( $(date +%s) - start )) s)" | tee -a "$LOG"
# its own share of memory: the default 75% failed to allocate beside other jobs (2026-12-02)
XLA_PYTHON_CLIENT_MEM_FRACTION=${COLLAPSE_MEM:-0.15} timeout "$(cap $(( $(left) - 15 )))" \
  python3 -m jaxsteer.distill.collapse \
  --students "${students%,}" --n "$N" --teacher "$TEACHER" --world "$WORLD" \
  --out "$OUT/collapse.json" 2>&1 | grep -v Warning | tee -a "$LOG"
chosen=$(python3 -c "import json; print(json.load(open('$OUT/collapse.json'))['chosen'])" \
         2>/dev/null || echo dmd4)
for d in "$WORK"/dmd*; do
  name=$(basename "$d"); [ -f "$d/model_index.json" ] || continue
  tar czf "$OUT/$([ "$name" = "$chosen" ] && echo student || echo "$name").tar.gz" \
    -C "$WORK" "$name"
done
echo "install: tar xzf student.tar.gz && python3 -m jaxsteer.$WORLD.assets install-student" \
  "$chosen" | tee -a "$LOG"
echo "chosen $chosen; done in $(( $(date +%s) - start )) s" | tee -a "$LOG"
ls -la "$OUT" | tee -a "$LOG"
