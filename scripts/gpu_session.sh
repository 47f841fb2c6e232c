#!/usr/bin/env bash
# One device call that does several things at once on the GPU box (16 cores, one H200):
# the gpu suite on $GPU_WORKERS xdist workers (default 6) and the PyTorch reference fixtures
# (SD and Flux, CPU torch, current diffusers carried in .whl2/). Logs and tarballs under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
( export PYTHONPATH=/tmp/site2 OMP_NUM_THREADS=2
  python3 scripts/make_torch_fixtures.py --out /tmp/fx/torch > "$OUT/fixtures.log" 2>&1
  echo "sd fixtures exit $?" >> "$OUT/fixtures.log"
  python3 scripts/make_flux_torch_fixtures.py --out /tmp/fx/torch_flux >> "$OUT/fixtures.log" 2>&1
  echo "flux fixtures exit $?" >> "$OUT/fixtures.log"
  tar czf "$OUT/torch_fixtures.tgz" -C /tmp/fx . ) &
SKIP_DEMO=${SKIP_DEMO:-1} OUT="$OUT" bash scripts/gpu_suite.sh -n "${GPU_WORKERS:-6}" "$@"
wait
tail -3 "$OUT/fixtures.log"
