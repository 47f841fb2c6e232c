#!/usr/bin/env bash
# On the GPU box: PyTorch reference fixtures (current diffusers from .whl2/, the box's torch and
# transformers) and `jaxsteer bench throughput` of the owned networks. Output under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site2 .whl2/*.whl || exit 1
PYTHONPATH=/tmp/site2 python3 scripts/make_torch_fixtures.py --out "$OUT/torch" \
  > "$OUT/fixtures.log" 2>&1; echo "fixtures exit $?" | tee -a "$OUT/fixtures.log"
(cd "$OUT" && tar czf torch_fixtures.tgz torch)
export PYTHONPATH=$PWD JAXSTEER_CACHE=/tmp/jaxsteer-cache PYTHONUNBUFFERED=1
[ "${BENCH_CONFIGS-x}" = "" ] && exit 0   # BENCH_CONFIGS= (empty): fixtures only
timeout "${BENCH_TIMEOUT:-420}" python3 -m jaxsteer.cli bench throughput \
  --configs "${BENCH_CONFIGS:-sd-turbo-1,sdxl-dmd2}" --min-time-s 3 --peak-tflops 989 \
  --out "$OUT/bench.json" 2>&1 | grep -v "^WARNING" | tee "$OUT/bench.log" | tail -40
