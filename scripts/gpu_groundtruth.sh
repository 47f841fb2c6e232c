#!/usr/bin/env bash
# The ground-truth benchmark at the authors' scale on one H200, in one command (< 9 minutes).
#
#   OUT=... bash scripts/gpu_groundtruth.sh            # (a) tuning sweep, split tune
#   GT_SPLIT=test OUT=... bash scripts/gpu_groundtruth.sh   # (b) the chosen config on test
#   GT_SPLIT="tune test" ...                                # both, side by side
#
# (a) runs the configurations of SWEEP at the same time on the one GPU (each its own process,
# its share of GPU memory, its JSON), all on `--groundtruth.split tune` at `--groundtruth.scale
# gpu` (25 complexity prompts, 4,096 gradients each, 16,384 for one prompt per free-factor
# count, pools of 1,024, 6 recovery and 6 diversity prompts, 8 seeds). Each JSON's
# complexity.variants ranks every estimator under both normalisations and threshold modes on
# that run's gradients, so the sweep itself only varies what needs new gradients (timesteps,
# rows). (b) runs GT_CONFIG (default: the one named below) alone on the test split.
# GT_CONFIGS (names of SWEEP, space-separated) narrows (a); GT_MEM sets each process's share of
# GPU memory (default 0.9 / the number of processes); GT_FLAGS is added to every run;
# GT_RESUME_FROM (a folder of this script's JSONs) continues unfinished runs.
# Every run writes its JSON after each prompt ("partial": true until it finishes), so a run the
# time limit stops still returns what it finished. Files under $OUT: one JSON per run and one
# log (at most 8 come back).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-runs/gpu_groundtruth}
LIMIT=${GT_LIMIT:-510}          # seconds for the whole command, startup included
SPLIT=${GT_SPLIT:-tune}
LOGS=$(mktemp -d /tmp/gt_logs.XXXX)   # per invocation: two may run side by side
mkdir -p "$OUT"
# An unfinished run resumes from its partial JSON (same settings): on a device whose $OUT starts
# empty, carry the JSONs an earlier command returned and name their folder in GT_RESUME_FROM.
if [ -n "${GT_RESUME_FROM:-}" ]; then cp "$GT_RESUME_FROM"/*.json "$OUT"/ || exit 1; fi
export PYTHONPATH=$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}

# name -> flags. first: the authors' default (noisiest step, the word's row, raw gradients, 2.5 / D
# subspace size); t500_all: the headline method tuned on the CPU (the benchmark's defaults).
# The rows-all runs spend fewer SVDs on spectral intervals (2048-wide rows: the SVDs dominate).
declare -A SWEEP=(
  [first]="--groundtruth.timesteps -1 --groundtruth.rows word --groundtruth.normalize none
           --groundtruth.headline subspace_size"
  [t500_word]="--groundtruth.rows word"
  [t500_all]="--groundtruth.complexity.n-boot-spectral 5 --groundtruth.complexity.n-boot-pa 5"
  [mix3_all]="--groundtruth.timesteps 750,500,250 --groundtruth.complexity.n-boot-spectral 5
             --groundtruth.complexity.n-boot-pa 5"
)
GT_CONFIG=${GT_CONFIG:-t500_all}

run_one() {  # name, memory fraction, flags...
  local name=$1 frac=$2; shift 2
  XLA_PYTHON_CLIENT_MEM_FRACTION=$frac timeout --signal=TERM "$LIMIT" \
    python3 -m jaxsteer.cli bench groundtruth --groundtruth.scale gpu \
      --groundtruth.split "$SPLIT" --groundtruth.out "$OUT/$name.$SPLIT.json" "$@" \
      > "$LOGS/gt_$name.$SPLIT.log" 2>&1
  echo "== $name ($SPLIT): exit $? after $SECONDS s" >> "$LOGS/gt_$name.$SPLIT.log"
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/groundtruth.log" 2>&1
jobs=()   # "split name" pairs: the tuning sweep's configs on tune, the chosen one on test
for split in $SPLIT; do
  if [ "$split" = tune ]; then
    for name in ${GT_CONFIGS:-${!SWEEP[@]}}; do jobs+=("tune $name"); done
  else
    jobs+=("$split $GT_CONFIG")
  fi
done
frac=${GT_MEM:-$(python3 -c "print(round(0.9 / ${#jobs[@]}, 3))")}
for job in "${jobs[@]}"; do
  read -r split name <<< "$job"
  [ -n "${SWEEP[$name]+set}" ] || { echo "no config $name in SWEEP" >&2; exit 2; }
  # shellcheck disable=SC2086  # the flags are meant to split into words
  SPLIT=$split run_one "$name" "$frac" ${SWEEP[$name]} ${GT_FLAGS:-} &
done
wait
for f in "$LOGS"/gt_*.log; do
  { echo "#### $f"; grep -v "Warning" "$f" | tail -150; } >> "$OUT/groundtruth.log"
done
ls -l "$OUT" >> "$OUT/groundtruth.log"
