#!/usr/bin/env bash
# Issue 17 item 7, "no speed regression": `jaxsteer bench throughput` BEFORE owning the networks
# (the package at d272db2~1 in .before/, on diffusers 0.39's Flax UNet, wheels in .whl/; both
# made by scripts/make_before_tree.sh) and AFTER (this checkout), in one run on one GPU box.
# Runs alternate per config (before A, after A, before B, after B, ...) so a cut keeps complete
# pairs; each run is its own process with a FRESH empty JAXSTEER_CACHE (cold compile, then the
# bench's own cached compile after jax.clear_caches). A pair is started only if its estimate
# (NEED_S per side) fits in what is left of BUDGET_S (default 560); each run is under `timeout`.
# Results: $STATE/{before,after}.<config>.json (kept on the box, so a second call on the same
# warm machine skips what is done and its summary covers both calls), copied to $OUT with
# before_after.log and summary.txt (config, grads/s before/after, ratio, compiles, peak GiB).
# All three configs take ~12 min, so two calls (each carrying .before and .whl):
#   CONFIGS=sd-turbo-1:::64,sd-turbo-4 OUT=/path bash scripts/gpu_before_after.sh   (~6 min)
#   CONFIGS=sdxl-dmd2:::16 OUT=/path bash scripts/gpu_before_after.sh              (~6 min)
# BENCH_FLAGS go to both sides; PHASES=summary STATE=folder only prints the table of a folder;
# SIDES=after runs one side only (e.g. BENCH_FLAGS="--scan-layers false" with its own STATE).
# CPU smoke: CONFIGS=tiny-1:xla:none:2 BENCH_FLAGS="--dtype float32" NEED_S=5 STATE=/tmp/x ...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
STATE=${STATE:-/tmp/jaxsteer-before-after}
SITE=${SITE:-/tmp/site-before}
CONFIGS=${CONFIGS:-sd-turbo-1:::64,sd-turbo-4,sdxl-dmd2:::16}
read -r -a SIDES <<< "${SIDES:-before after}"
PHASES=${PHASES:-bench summary}
LOG=$OUT/before_after.log
START=$(date +%s)
DEADLINE=$((START + ${BUDGET_S:-560}))
read -r -a FLAGS <<< "${BENCH_FLAGS:-}"
mkdir -p "$STATE"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.9
left() { echo $((DEADLINE - $(date +%s))); }
need() {  # seconds one side of a config takes on an H200 (imports, weights, compiles, timing)
  case $1 in
    sdxl-dmd2*) echo "${NEED_S:-190}" ;; sd-turbo-4*) echo "${NEED_S:-110}" ;;
    *) echo "${NEED_S:-80}" ;;
  esac
}
side_env() {  # side_env SIDE: the env assignments of that side's processes
  if [ "$1" = before ]; then echo "PYTHONPATH=$SITE:$ROOT/.before"; else echo "PYTHONPATH=$ROOT"; fi
}
side_dir() { if [ "$1" = before ]; then echo "$ROOT/.before"; else echo "$ROOT"; fi; }
check_side() {  # imports each side once: which jaxsteer (python -m puts the cwd first)
  local want
  want=$(side_dir "$1")/jaxsteer/__init__.py
  (cd "$(side_dir "$1")" && env "$(side_env "$1")" python3 -c "
import importlib.util as u, os, sys, jax, jaxsteer
mods = {m: __import__(m).__version__ for m in ('diffusers', 'transformers', 'flax')
        if u.find_spec(m)}
print('$1: jaxsteer', jaxsteer.__file__, 'jax', jax.__version__, jax.devices()[0].device_kind,
      mods)
sys.exit(os.path.realpath(jaxsteer.__file__) != os.path.realpath('$want'))") 2>&1 | grep -v "^WARNING" | tee -a "$LOG"
  return "${PIPESTATUS[0]}"
}
done_ok() { [ -f "$1" ] && grep -q '"status": "ok"' "$1"; }

if [[ " $PHASES " == *" bench "* ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 \
    | tee -a "$LOG"
  if [ ! -f "$SITE/.installed" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl && touch "$SITE/.installed" || exit 1
  fi
  [ -f .before/jaxsteer/cli.py ] || { echo "no .before/: run scripts/make_before_tree.sh"; exit 1; }
  for side in "${SIDES[@]}"; do check_side "$side" || bad=1; done
  if [ -n "${bad:-}" ]; then
    echo "wrong jaxsteer imported" | tee -a "$LOG"; exit 1
  fi
  IFS=, read -r -a SPECS <<< "$CONFIGS"
  for spec in "${SPECS[@]}"; do
    name=${spec//[^A-Za-z0-9.-]/_}
    todo=()
    for side in "${SIDES[@]}"; do
      done_ok "$STATE/$side.$name.json" || todo+=("$side")
    done
    ((${#todo[@]})) || { echo "== $spec: done in $STATE" | tee -a "$LOG"; continue; }
    if (($(left) < ${#todo[@]} * $(need "$spec"))); then
      echo "== $spec: skipped, $(left) s left for ${todo[*]}" | tee -a "$LOG"; continue
    fi
    for side in "${todo[@]}"; do
      t=$(left)
      ((t < 20)) && { echo "== $side $spec: skipped, $t s left" | tee -a "$LOG"; continue; }
      cache=$(mktemp -d /tmp/jaxsteer-ba-cache.XXXXXX)
      echo "== $side $spec (at most $t s, cache $cache)" | tee -a "$LOG"
      s=$(date +%s)
      (cd "$(side_dir "$side")" && timeout -k 10 "$t" env "$(side_env "$side")" \
        JAXSTEER_CACHE="$cache" python3 -m jaxsteer.cli bench throughput --configs "$spec" \
        --min-time-s "${MIN_TIME_S:-2}" --peak-tflops 989 --cached-compile true \
        "${FLAGS[@]}" --out "$STATE/$side.$name.json") 2>&1 | grep -v "^WARNING" >> "$LOG"
      echo "== $side $spec: exit ${PIPESTATUS[0]} after $(($(date +%s) - s)) s" | tee -a "$LOG"
      rm -rf "$cache"
    done
  done
  cp "$STATE"/*.json "$OUT"/ 2>/dev/null
fi
[[ " $PHASES " == *" summary "* ]] && python3 - "$STATE" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
rows = {}
for p in sorted(Path(sys.argv[1]).glob("*.json")):
    side, name = p.stem.split(".", 1)
    data = json.loads(p.read_text())
    for r in data["rows"]:
        if r.get("side") == "jax":
            rows.setdefault(name, {})[side] = dict(r, jax=data.get("jax"), dev=data.get("device"))
def f(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"
def comp(r):
    if not r or r.get("compile_s") is None:
        return "-"
    return f"{r['compile_s']:.1f}{'' if r.get('cache_miss') else '*'}/{f(r.get('compile_cached_s'))}"
head = ("config", "batch", "remat", "before g/s", "after g/s", "after/before",
        "compile before s", "compile after s", "peak GiB b/a", "MFU % b/a")
lines = [head]
for name, s in rows.items():
    b, a = s.get("before"), s.get("after")
    gb = b.get("grads_per_s") if b else None
    ga = a.get("grads_per_s") if a else None
    any_ = a or b
    lines.append((name, str(any_.get("batch")), any_.get("remat", "-"), f(gb), f(ga),
                  f(ga / gb, 3) if ga and gb else "-", comp(b), comp(a),
                  f"{f((b or {}).get('peak_gib'))}/{f((a or {}).get('peak_gib'))}",
                  f"{f(100 * b['mfu']) if b and b.get('mfu') else '-'}/"
                  f"{f(100 * a['mfu']) if a and a.get('mfu') else '-'}"))
    for side, r in (("before", b), ("after", a)):
        if r and r.get("status") != "ok":
            print(f"{name} {side}: {r.get('status')}")
w = [max(len(str(x[i])) for x in lines) for i in range(len(head))]
for i, x in enumerate(lines):
    print("  ".join(str(c).ljust(w[j]) if j == 0 else str(c).rjust(w[j]) for j, c in enumerate(x)))
    if i == 0:
        print("  ".join("-" * n for n in w))
print("compile: cold (lower + compile, fresh cache; * = served from a cache) / cached (after "
      "jax.clear_caches); before = d272db2~1 (diffusers 0.39 Flax), after = this checkout")
devs = {(r.get("dev"), r.get("jax")) for s in rows.values() for r in s.values()}
print("device, jax:", ", ".join(f"{d} {j}" for d, j in sorted(devs, key=str)))
EOF
echo "total $(($(date +%s) - START)) s" | tee -a "$LOG"
