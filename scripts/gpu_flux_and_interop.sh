#!/usr/bin/env bash
# On the GPU box (one H200, 16 cores), in under 9 minutes (per-phase timeouts sum to 520 s):
#   numerics  full-size random-weight Flux transformer, jaxsteer vs diffusers in float32
#             (output error, gradient cosine >= 0.999), and the Flux bench's PyTorch reference
#             against jaxsteer's kernel on tiny-flux (scripts/gpu_flux_numerics.py)
#   interop   the export round trip: tiny diffusers SD pipeline -> jaxsteer directions ->
#             diffusers render with prompt_embeds= vs jaxsteer's render (CPU, beside numerics;
#             scripts/interop_roundtrip.py), plus the CI fixture as a tarball
#   sample    `jaxsteer bench sample` (SD-Turbo 1 step 512², SDXL-DMD2 4 steps 1024²) with the
#             diffusers loop (eager, then torch.compile) in the same call
#   flux      `jaxsteer bench throughput --configs flux-schnell` (8 pairs) with its PyTorch
#             reference (eager, then regional torch.compile) in the same call
# PHASES selects (default: all four, in this order); T_* override each timeout. A phase cut by
# its timeout keeps what it wrote (both benches write every row as it is measured). Current
# diffusers comes from the wheels in .whl2/ (the box has torch and transformers, not diffusers).
# Results in $OUT: log.txt, flux_numerics.json, roundtrip.json, interop_fixture.tgz,
# sample.json, flux.json (each bench JSON holds the PyTorch rows too).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT" /tmp/bench
PHASES=" ${PHASES:-numerics interop sample flux} "
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
export PYTHONPATH=/tmp/site2:$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}
export PYTHONUNBUFFERED=1
start=$(date +%s)
log() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$OUT/log.txt"; }
run() {  # run NAME TIMEOUT CMD...: output appended to log.txt (JAX warnings left out)
  local name=$1 t=$2; shift 2
  log "$name: start (timeout $t s)"
  timeout "$t" "$@" 2>&1 | grep -v -e "^WARNING" -e "^W[0-9]" >> "$OUT/log.txt"
  log "$name: exit ${PIPESTATUS[0]} (124 = timed out)"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/log.txt"

if [[ $PHASES == *" interop "* ]]; then   # CPU only: runs while the GPU does the numerics
  ( OMP_NUM_THREADS=6 JAX_PLATFORMS=cpu timeout "${T_INTEROP:-150}" \
      python3 scripts/interop_roundtrip.py --out /tmp/interop > /tmp/interop.log 2>&1
    echo "interop exit $? (124 = timed out)" >> /tmp/interop.log ) &
  interop=$!
fi
if [[ $PHASES == *" numerics "* ]]; then
  run numerics "${T_NUMERICS:-150}" python3 scripts/gpu_flux_numerics.py \
    --out "$OUT/flux_numerics.json"
fi
if [[ $PHASES == *" interop "* ]]; then
  wait "$interop"
  grep -v -e "^WARNING" -e "^W[0-9]" /tmp/interop.log | tail -40 >> "$OUT/log.txt"
  cp /tmp/interop/roundtrip.json "$OUT/" 2>/dev/null
  [ -d /tmp/interop/fixture ] && tar czf "$OUT/interop_fixture.tgz" -C /tmp/interop fixture
  log "interop: done (fixture for tests/fixtures/interop/ in interop_fixture.tgz)"
fi
torch_json() { [ -s "$1" ] && echo "--torch-json $1"; }
if [[ $PHASES == *" sample "* ]]; then
  run sample-torch "${T_SAMPLE_TORCH:-60}" python3 -m jaxsteer.benchmarks.sampling_reference \
    --configs sd-turbo,sdxl-dmd2 --variants eager,compile --min-time-s 1 \
    --out /tmp/bench/sample_torch.json
  # shellcheck disable=SC2046
  run sample "${T_SAMPLE:-100}" python3 -m jaxsteer.cli bench sample --min-time-s 1 \
    --pool-shards 3 $(torch_json /tmp/bench/sample_torch.json) --out /tmp/bench/sample.json
  cp /tmp/bench/sample.json "$OUT/" 2>/dev/null
fi
if [[ $PHASES == *" flux "* ]]; then
  run flux-torch "${T_FLUX_TORCH:-95}" python3 -m jaxsteer.benchmarks.flux_reference \
    --configs flux-schnell --batches 8 --variants eager,compile --min-time-s 1 \
    --out /tmp/bench/flux_torch.json
  # shellcheck disable=SC2046
  run flux "${T_FLUX:-115}" python3 -m jaxsteer.cli bench throughput \
    --configs flux-schnell:auto:blocks:8 --min-time-s 1 --cached-compile false \
    --model-flops false $(torch_json /tmp/bench/flux_torch.json) --out /tmp/bench/flux.json
  cp /tmp/bench/flux.json "$OUT/" 2>/dev/null
fi
log "all done"
