#!/usr/bin/env bash
# Trains the scenes model (jaxsteer/scenes: 64 x 64 latent world, 8 factors) on one H200, in
# commands of < 9 minutes: each run trains until DEADLINE_S, checkpoints, and exits; run the same
# command again until the log ends in "done". The run that finishes training exports the pipeline
# folder; the next one (which trains nothing, so the table has its whole deadline) writes the
# probe quality table (quality.md / quality.json); both return the folder as $OUT/scenes-model.tgz
# (a folder there would be too deep to come back from the device).
#   OUT=$OUT bash scripts/gpu_train_scenes.sh            # repeat until "done"
# The checkpoints live in build/scenes/train (ignored by git, kept while the machine stays warm).
# On a fresh machine the run starts over unless the checkpoint travels: each call returns it in
# $OUT as train.tgz.part-* (<= 15 MiB each); copy them to .scenes-carry/ and carry that folder.
# Its size (float32, the default model): VAE phase 11.2 MiB; UNet phase 56.0 MiB (3.48 M UNet +
# text params, EMA and two Adam moments, plus the finished VAE's EMA). The working tree is 36 MiB
# (2026-12-02, with the bundled models), so a UNet-phase checkpoint no longer fits the 64 MiB
# that travels (refused on 2026-12-02): keep the machine warm between the commands of the UNet
# phase (call again within its idle time), or accept a restart of that phase.
#
# Model (defaults of ScenesModelConfig): VAE 32,32,64 channels (64x64x3 -> 16x16x4), 0.73 M
# params; UNet 32,64,96 channels, attention at 8x8 and 4x4, 2.80 M; CLIP text 128 wide, 3
# layers, 0.68 M; 4.22 M in all = 8.4 MB in float16 (the bundled shapes model: 11 MB).
#
# Measured on one H200 (2026-12-02, session 9; results/2026-12-02-s9/scenes_train.log): the VAE
# phase ran at ~70 steps/s (batch 64) and the UNet phase at ~25-28 steps/s (batch 256: the mean
# rates of the two long commands, compile and the host's caption draw included); 4000 VAE +
# 24000 UNet steps took about 18 minutes of training over
# three commands (the first one after the GPU suite). The shipped model used --steps 24000 (the
# optimiser's rate is constant, so stopping early changes no schedule); the default stays 30000.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-gpu-out}
DEADLINE=${DEADLINE_S:-520}
WORK=${WORK:-build/scenes}
mkdir -p "$OUT" "$WORK"
export JAXSTEER_CACHE=${JAXSTEER_CACHE:-/tmp/jaxsteer-cache}
# A cold machine has no build/: the checkpoint comes back in $OUT as <= 15 MiB parts (the device
# returns at most 8 files of 16 MiB); copy them to .scenes-carry/ here and carry that folder.
if [[ ! -d "$WORK/train" ]] && compgen -G ".scenes-carry/train.tgz.part-*" >/dev/null; then
  cat .scenes-carry/train.tgz.part-* | tar xzf - -C "$WORK" && echo "resumed from .scenes-carry"
fi
python3 -m jaxsteer.scenes.train "$WORK/model" --work-dir "$WORK/train" \
  --deadline-s "$DEADLINE" "$@" 2>&1 | grep -v -e "^WARNING" -e "^W[0-9]" | tee -a "$OUT/train.log"
cp "$WORK/train/progress.json" "$OUT/" 2>/dev/null
if [[ -f "$WORK/model/model_index.json" ]]; then
  tar czf "$OUT/scenes-model.tgz" -C "$WORK" model
fi
[[ -d "$WORK/train" ]] && tar czf - -C "$WORK" train | split -b 15M - "$OUT/train.tgz.part-"
exit 0
