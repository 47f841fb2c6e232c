#!/usr/bin/env bash
# Trains the scenes model (jaxsteer/scenes: 64 x 64 latent world, 8 factors) on one H200, in
# commands of < 9 minutes: each run trains until DEADLINE_S, checkpoints, and exits; run the same
# command again until the log ends in "done". The run that finishes training exports the pipeline
# folder; the next one (which trains nothing, so the table has its whole deadline) writes the
# probe quality table (quality.md / quality.json); both copy the folder to $OUT/scenes-model.
#   OUT=$OUT bash scripts/gpu_train_scenes.sh            # repeat until "done"
# The checkpoints live in build/scenes/train (ignored by git, kept while the machine stays warm).
# On a fresh machine, carry build/scenes/train or the run starts over. Its size (float32,
# parameter counts of the default model): VAE phase 11.2 MiB (0.73 M VAE params, EMA and two
# Adam moments); UNet phase 56.0 MiB (3.48 M UNet + text params, EMA and two Adam moments:
# 53.2 MiB as written, plus the finished VAE's EMA only: 2.8 MiB), inside the 64 MiB limit. Carry
# the train folder alone: with the exported model/ (8.0 MiB in float16) it would be 64.0 MiB;
# a call that finds no export writes it again (seconds).
#
# Model (defaults of ScenesModelConfig): VAE 32,32,64 channels (64x64x3 -> 16x16x4), 0.73 M
# params; UNet 32,64,96 channels, attention at 8x8 and 4x4, 2.80 M; CLIP text 128 wide, 3
# layers, 0.68 M; 4.22 M in all = 8.4 MB in float16 (the bundled shapes model: 11 MB).
#
# Speed estimate (not measured: no GPU this session). XLA's cost analysis on the CPU: UNet
# forward 0.20 GFLOP / sample, VAE encoder 0.34, decoder 0.72. A UNet step (fwd + bwd of the
# UNet, forward of the frozen encoder) is ~0.93 GFLOP / sample, 240 GFLOP at batch 256; a VAE
# step ~3.2 GFLOP / sample, 200 GFLOP at batch 64. At the 5-10% of the H200's dense peak that
# models this small reach (~50-100 TFLOP/s), that is 2.5-5 ms of device time per step, so the
# host's caption draw (~17 ms for 256 captions on one core, measured here) bounds the rate:
# expect ~40-60 UNet steps/s and ~60-100 VAE steps/s. Steps needed: the shapes model was
# usable after 20k steps at batch 256 (train-shapes' default); the scenes UNet has 8 factors
# instead of 5, so 30k (default --steps), and 4k VAE steps (renders are simple; check the VAE
# l1 in the log: < 0.02 is sharp enough for the probe). Total ~10-14 minutes: 2 commands, and a
# third for the quality table.
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
  rm -rf "$OUT/scenes-model" && cp -r "$WORK/model" "$OUT/scenes-model"
fi
[[ -d "$WORK/train" ]] && tar czf - -C "$WORK" train | split -b 15M - "$OUT/train.tgz.part-"
exit 0
