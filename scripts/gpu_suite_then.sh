#!/usr/bin/env bash
# One < 10-minute command on the H200: the GPU suite alone first (nothing else on the GPU), then,
# in the time left before DEADLINE_S, one more job (THEN):
#   THEN=scenes  the scenes world's training (scripts/gpu_train_scenes.sh) until the deadline:
#                its log gives the steps per second on this GPU ($OUT/scenes/)
#   THEN=before_after  issue 17's before/after bench (scripts/gpu_before_after.sh, its CONFIGS)
#                with what is left; its STATE stays on the box for the next call; carry .before/
#                and .whl/ (scripts/make_before_tree.sh)
#   THEN=sample  `jaxsteer bench sample` for SD-Turbo (1 step, 512²) with its PyTorch reference
#                (eager, then torch.compile), each row written as it is measured, so a cut keeps
#                what finished; carry .whl2/ (current diffusers, for the PyTorch side)
#   THEN=flux    the Flux bench's PyTorch reference against jaxsteer's kernel on tiny-flux
#                (scripts/gpu_flux_numerics.py --skip-full), then the flux-schnell PyTorch rows
#                (eager, then regional torch.compile; each row written as measured) with what is
#                left; carry .whl2/. TORCH_BATCHES (default 8) and TORCH_REMAT (blocks | none)
#                pick the PyTorch rows: TORCH_REMAT=none TORCH_BATCHES=4 is the like-for-like
#                partner of jaxsteer's flux-schnell:auto:none:4
#   THEN=flux_jax  `jaxsteer bench throughput` on flux-schnell's remat variants (FLUX_CONFIGS,
#                default matmuls at 8 pairs, then none at 4), each row written as measured
#   INTEROP=1    also, on the CPU beside the suite, the export round trip against diffusers
#                (scripts/interop_roundtrip.py; $OUT/interop/roundtrip.json); carry .whl2/
#   SAMPLE_CONFIGS  the sample bench's configs (default sd-turbo)
#   WORKERS      the suite's xdist workers (default 6)
#   THEN=scenes OUT=$OUT bash scripts/gpu_suite_then.sh
# Results: $OUT/suite/ (gpu_suite.log, env.txt, gpu.txt) and the job's folder.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
DEADLINE=${DEADLINE_S:-560}
if [ -n "${INTEROP:-}" ]; then   # CPU only (JAX_PLATFORMS=cpu): leaves the GPU to the suite
  mkdir -p "$OUT/interop"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site2 .whl2/*.whl || exit 1
  ( PYTHONPATH=/tmp/site2:$PWD OMP_NUM_THREADS=4 JAX_PLATFORMS=cpu timeout 400 \
      python3 scripts/interop_roundtrip.py --out /tmp/interop > /tmp/interop.log 2>&1
    echo "interop exit $? (124 = timed out)" >> /tmp/interop.log
    cp /tmp/interop/roundtrip.json "$OUT/interop/" 2>/dev/null
    grep -v -e "^WARNING" -e "^W[0-9]" /tmp/interop.log | tail -30 > "$OUT/interop/log.txt" ) &
fi
SKIP_DEMO=1 SUITE_TIMEOUT=${SUITE_TIMEOUT:-480} OUT=$OUT/suite bash scripts/gpu_suite.sh -n "${WORKERS:-6}"
left=$(( DEADLINE - SECONDS ))
if [ "${THEN:-sample}" = scenes ]; then
  (( left < 60 )) && { echo "scenes: skipped, $left s left"; exit 0; }
  DEADLINE_S=$(( left - 15 )) OUT=$OUT/scenes bash scripts/gpu_train_scenes.sh
  # at most 8 files come back: the small ones in one tarball
  (cd "$OUT" && tar czf logs.tgz suite/env.txt suite/gpu.txt scenes/train.log \
     scenes/progress.json 2>/dev/null; rm -f suite/env.txt suite/gpu.txt scenes/train.log)
  exit 0
fi
if [ "${THEN:-sample}" = before_after ]; then
  (( left < 100 )) && { echo "before_after: skipped, $left s left"; exit 0; }
  BUDGET_S=$(( left - 10 )) OUT=$OUT/ba bash scripts/gpu_before_after.sh
  exit 0
fi
if [ "${THEN:-sample}" = flux ]; then
  mkdir -p "$OUT/flux"
  (( left < 60 )) && { echo "flux: skipped, $left s left"; exit 0; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site2 .whl2/*.whl || exit 1
  export PYTHONPATH=/tmp/site2:$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}
  timeout 90 python3 scripts/gpu_flux_numerics.py --skip-full --out "$OUT/flux/equivalence.json" \
    2>&1 | grep "flux numerics" > "$OUT/flux/log.txt"
  t=$(( DEADLINE - SECONDS - 5 ))
  (( t > 30 )) && timeout "$t" python3 -m jaxsteer.benchmarks.flux_reference --configs \
    flux-schnell --batches "${TORCH_BATCHES:-8}" --remat "${TORCH_REMAT:-blocks}" \
    --variants eager,compile --min-time-s 1 \
    --out "$OUT/flux/torch.json" 2>&1 | grep '^{' >> "$OUT/flux/log.txt"
  echo "flux: done at $SECONDS s" >> "$OUT/flux/log.txt"
  exit 0
fi
if [ "${THEN:-sample}" = flux_jax ]; then
  mkdir -p "$OUT/flux"
  t=$(( DEADLINE - SECONDS - 5 ))
  (( t < 90 )) && { echo "flux_jax: skipped, $t s left"; exit 0; }
  JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} timeout "$t" python3 -m jaxsteer.cli \
    bench throughput --configs "${FLUX_CONFIGS:-flux-schnell:auto:matmuls:8,flux-schnell:auto:none:4}" \
    --min-time-s 1 --no-cached-compile --out "$OUT/flux/jax.json" 2>&1 \
    | grep -v -e "^WARNING" -e "^W[0-9]" | tail -20 > "$OUT/flux/log.txt"
  echo "flux_jax: exit ${PIPESTATUS[0]} (124 = timed out) at $SECONDS s" >> "$OUT/flux/log.txt"
  exit 0
fi
mkdir -p "$OUT/sample" /tmp/bench
log() { echo "[$SECONDS s] $*" | tee -a "$OUT/sample/log.txt"; }
if (( left < 90 )); then log "sample: skipped, $left s left"; exit 0; fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
export PYTHONPATH=/tmp/site2:$PWD JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}
torch_s=$(( left * 55 / 100 ))
log "sample-torch: start (timeout $torch_s s)"
timeout "$torch_s" python3 -m jaxsteer.benchmarks.sampling_reference --configs "${SAMPLE_CONFIGS:-sd-turbo}" \
  --variants eager,compile --min-time-s 1 --out /tmp/bench/sample_torch.json \
  2>&1 | grep -v -e "^WARNING" -e "^W[0-9]" >> "$OUT/sample/log.txt"
log "sample-torch: exit ${PIPESTATUS[0]} (124 = timed out)"
torch_json=()
[ -s /tmp/bench/sample_torch.json ] && torch_json=(--torch-json /tmp/bench/sample_torch.json)
jax_s=$(( DEADLINE - SECONDS - 5 ))
log "sample: start (timeout $jax_s s)"
timeout "$jax_s" python3 -m jaxsteer.cli bench sample --configs "${SAMPLE_CONFIGS:-sd-turbo}" --min-time-s 1 \
  --pool-shards 3 "${torch_json[@]}" --out /tmp/bench/sample.json \
  2>&1 | grep -v -e "^WARNING" -e "^W[0-9]" >> "$OUT/sample/log.txt"
log "sample: exit ${PIPESTATUS[0]} (124 = timed out)"
cp /tmp/bench/sample.json /tmp/bench/sample_torch.json "$OUT/sample/" 2>/dev/null
wait   # the interop round trip, if it runs
exit 0
