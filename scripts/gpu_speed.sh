#!/usr/bin/env bash
# Issue 19's speed run on one H200, one command, under 9 minutes (BUDGET_S, default 530 s):
#   jax_throughput  `jaxsteer bench throughput` sd-turbo-1 (64 pairs), sdxl-dmd2 (16, matmuls),
#                   sd-turbo-4, and if started within 170 s sdxl-dmd2 without remat: cold compile
#                   (fresh cache folder), steady state, MFU, in-process cached compile
#   torch_eager     the PyTorch reference, eager (sd-turbo-1:64, sdxl-dmd2:8/16, sd-turbo-4:32)
#   profile         `jaxsteer bench profile` sd-turbo-1 and sdxl-dmd2 in a FRESH process with warm
#                   caches: its lower + compile time is the cached start; top kernels by time
#   survey          `jaxsteer bench survey` (prompts/hour, 256 gradients per prompt, SD-Turbo)
#   torch_compile   the PyTorch reference, channels_last + torch.compile ($TORCH_COMPILE_CONFIGS,
#                   default sd-turbo-1:64; its first call compiles for 146-256 s)
#   summary         the tables of all of the above ($OUT/summary.txt)
# Phases run in that order, one at a time (their timings never overlap on the GPU), each under
# `timeout` capped by what is left of the budget; a phase that would get under 25 s is skipped
# and says so. PHASES="torch_eager torch_compile" TORCH_COMPILE_CONFIGS=sd-turbo-1:64,sdxl-dmd2:16
# is the PyTorch side alone (~8 min). Results under $OUT (8 files at most); the PyTorch side
# needs diffusers, carried as wheels in .whl2/ (installed to /tmp/site2). THROUGHPUT_CONFIGS,
# PROFILE_CONFIGS, SURVEY_CONFIG and BENCH_FLAGS change the JAX runs (a CPU smoke test of this
# script: THROUGHPUT_CONFIGS=tiny-1:xla:none:2 ... BENCH_FLAGS="--dtype float32").
# Usage: OUT=/path bash scripts/gpu_speed.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
LOG="$OUT/speed.log"
START=$(date +%s)
DEADLINE=$((START + ${BUDGET_S:-530}))
PHASES=${PHASES:-jax_throughput torch_eager profile survey torch_compile summary}
TORCH_COMPILE_CONFIGS=${TORCH_COMPILE_CONFIGS:-sd-turbo-1:64}
DEFAULT_RUNS=sd-turbo-1:::64,sdxl-dmd2:::16,sd-turbo-4,sdxl-dmd2::none:16
THROUGHPUT_CONFIGS=${THROUGHPUT_CONFIGS:-$DEFAULT_RUNS}
PROFILE_CONFIGS=${PROFILE_CONFIGS:-sd-turbo-1:::64,sdxl-dmd2:::16}
SURVEY_CONFIG=${SURVEY_CONFIG:-sd-turbo-1:::64}
read -r -a FLAGS <<< "${BENCH_FLAGS:-}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9
# A new, empty cache folder: cold compiles are part of what this run measures.
JAXSTEER_CACHE=$(mktemp -d /tmp/jaxsteer-speed-cache.XXXXXX)
export JAXSTEER_CACHE
TORCH_PATH=$PWD
if compgen -G ".whl2/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site2 .whl2/*.whl && TORCH_PATH=/tmp/site2:$PWD
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader \
  | tee "$LOG"

want() { [[ " $PHASES " == *" $1 "* ]]; }
phase() {  # phase NAME CAP CMD...: CMD under timeout min(CAP, time left); its output in the log
  local name=$1 cap=$2 t s rc
  shift 2
  want "$name" || return 0
  t=$((DEADLINE - $(date +%s)))
  ((t > cap)) && t=$cap
  if ((t < 25)); then echo "== $name: skipped, $t s left" | tee -a "$LOG"; return 0; fi
  echo "== $name (at most $t s): $*" | tee -a "$LOG"
  s=$(date +%s)
  timeout -k 10 "$t" "$@" 2>&1 | grep -v "^WARNING" >> "$LOG"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $(($(date +%s) - s)) s" | tee -a "$LOG"
}
BENCH=(python3 -m jaxsteer.cli bench)   # commands, not functions: `timeout` runs them
TORCH_REF=(env "PYTHONPATH=$TORCH_PATH" python3 -m jaxsteer.benchmarks.torch_reference)
rm -rf /tmp/jaxsteer-profile

phase jax_throughput 260 "${BENCH[@]}" throughput --configs "$THROUGHPUT_CONFIGS" "${FLAGS[@]}" \
  --min-time-s 2 --peak-tflops 989 --budget-s 170 --out "$OUT/throughput.json"
phase torch_eager 110 "${TORCH_REF[@]}" --configs sd-turbo-1:64,sdxl-dmd2:8/16,sd-turbo-4:32 \
  --variants eager --min-time-s 2 --out "$OUT/torch.json"
phase profile 90 "${BENCH[@]}" profile --configs "$PROFILE_CONFIGS" "${FLAGS[@]}" \
  --out /tmp/jaxsteer-profile/profile.json
[ -f /tmp/jaxsteer-profile/profile.json ] && cp /tmp/jaxsteer-profile/profile.json "$OUT/"
phase survey 170 "${BENCH[@]}" survey --configs "$SURVEY_CONFIG" "${FLAGS[@]}" --prompts 3 \
  --peak-tflops 989 --out "$OUT/survey.json"
phase torch_compile 480 "${TORCH_REF[@]}" --configs "$TORCH_COMPILE_CONFIGS" --variants compile \
  --min-time-s 2 --out "$OUT/torch_compile.json"
want summary && python3 - "$OUT" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
from jaxsteer.benchmarks.throughput import format_ratio, format_table
out = Path(sys.argv[1])
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
rows = []
for name in ("throughput.json", "torch.json", "torch_compile.json"):
    data = load(name)
    rows += data["rows"] if data else []
    print(f"{name}: {'absent' if data is None else len(data['rows'])} rows")
print(format_table(rows))
print(format_ratio(rows))
for r in rows:
    if r.get("side") == "torch":
        print("torch", r.get("config"), r.get("variant"), r.get("batch"), r.get("status"),
              f"{r.get('grads_per_s', 0):.1f} grads/s, first call {r.get('first_call_s', 0):.0f} s")
prof = load("profile.json")
for run in (prof or {}).get("runs", []):
    print(f"\nprofile {run['run']}: {run['grads_per_s']:.1f} grads/s in the trace, lower + compile "
          f"{run['compile_s']:.1f} s ({'cached' if run['compile_cache_hit'] else 'COLD'})")
    for c in run["categories"]:
        print(f"  {c['category']:<20} {c['ms_per_call']:9.2f} ms {100 * c['share']:5.1f}%")
    for k in run["top"][:12]:
        print(f"  {k['ms_per_call']:8.2f} ms {100 * k['share']:5.1f}% {k['category']:<18} "
              f"{k['name']}")
sv = load("survey.json")
if sv:
    m = sv["per_prompt_s"]
    print(f"\nsurvey: {sv['prompts_per_hour']:.0f} prompts/hour ({sv['pairs']} gradients/prompt, "
          f"{sv['pool_mode']}); per prompt collect {m['collect']:.2f} s, estimate "
          f"{m['estimate']:.2f} s, other {m['other']:.2f} s; collect "
          f"{sv['grads_per_s_collect']:.1f} grads/s, MFU {100 * sv.get('collect_mfu', 0):.1f}%; "
          f"compile {sv['compile_s']:.0f} s")
EOF
echo "total $(($(date +%s) - START)) s" | tee -a "$LOG"
