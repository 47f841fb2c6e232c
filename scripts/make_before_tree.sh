#!/usr/bin/env bash
# Builds what scripts/gpu_before_after.sh carries to the GPU box (issue 17 item 7, "no speed
# regression"): .before/jaxsteer is the package at d272db2~1, the last commit whose networks were
# diffusers 0.39's Flax classes + transformers 4.x's Flax CLIP (its bundled model assets left out:
# `bench throughput` builds random weights and never reads them), and .whl/ the wheels that old
# code needs on the box's Python 3.12 x86_64 beside what the box has (transformers 5.x,
# huggingface-hub 1.x, tokenizers 0.23.2 there). Both folders are ignored (.git/info/exclude).
# Usage: bash scripts/make_before_tree.sh [REPO]   (REPO: default this script's checkout)
set -euo pipefail
ROOT=$(cd "${1:-$(dirname "$0")/..}" && pwd)
REV=${REV:-d272db2~1}
cd "$ROOT"
rm -rf .before .whl
mkdir -p .before .whl
git archive "$REV" jaxsteer ':(exclude)jaxsteer/assets' | tar -x -C .before
git rev-parse "$REV" > .before/REVISION
# diffusers 0.39.0: the last release with the Flax model classes; transformers 4.57.6: what the
# bundled models were saved with (its pyproject then: >=4.45,<5). The rest are their needs that
# the box lacks (importlib_metadata) or has at versions they refuse (hub <1.0, tokenizers <=0.23.0).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.39.0 transformers==4.57.6 huggingface-hub==0.36.2 tokenizers==0.22.2 \
  importlib_metadata==8.7.0
du -sh .before .whl
ls .whl
