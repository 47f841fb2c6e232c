#!/usr/bin/env bash
# The accelerator suite on a GPU box, as run on the project's H200 (see README, Development).
# The box's Python lacks diffusers 0.39 / transformers 4.x (the Flax classes jaxsteer still
# loads): carry them as wheels in .whl/ and they are installed to /tmp/site first. Then the
# default demo, timed, and `pytest -m gpu`; logs go to $OUT (or ./gpu-out).
# DIST (default load) is xdist's distribution: pyproject's loadfile, right for the CPU suite,
# put the GPU suite's two files on two of six workers (28 passed in 525 s on 2026-12-03, the
# other four idle); `load` spreads single tests, at the cost of rebuilding a module fixture
# on each worker that takes one of its tests. DIST=loadfile gives the old schedule.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -m jaxsteer.cli env 2>&1 | tail -4 | tee "$OUT/env.txt"
if [ -z "${SKIP_DEMO:-}" ]; then
  start=$(date +%s)
  python3 -m jaxsteer.cli demo --out /tmp/demo > "$OUT/demo.log" 2>&1
  echo "demo exit $? in $(( $(date +%s) - start )) s; report: $(ls -la /tmp/demo/report.html 2>&1)" \
    | tee -a "$OUT/demo.log"
fi
timeout "${SUITE_TIMEOUT:-540}" python3 -m pytest -m gpu -p no:cacheprovider --durations=20 \
  --dist "${DIST:-load}" tests/gpu "$@" 2>&1 | tee "$OUT/gpu_suite.log" | tail -60
