"""Quality of a shapes model, measured with the probe against the captions' ground truth.

Two numbers decide whether a model is good enough to ship:

- **fixed**: the share of samples whose every caption-fixed factor reads back inside its band
  (widened by `captions.TOLERANCE`); target >= 0.95;
- **coverage**: for each factor a caption leaves free, the share of equal bins of its training
  range (10 for x, y, size; 12 for hue; the 3 types) that hold at least a quarter of a uniform
  bin's share of the samples; target >= 0.8 for every factor.

`score` works on any images, so the same numbers on rendered images are a known-answer test.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxsteer.shapes.captions import (
    CONTINUOUS,
    FACTORS,
    HELDOUT_CAPTIONS,
    RANGES,
    TYPES,
    obeys,
    spec,
)
from jaxsteer.shapes.model import load
from jaxsteer.shapes.probe import measure
from jaxsteer.shapes.render import sample_factors, to_uint8
from jaxsteer.shapes.sample import generate

_BINS = {"hue": 12, "x": 10, "y": 10, "size": 10, "type": len(TYPES)}
FIXED_TARGET, COVERAGE_TARGET = 0.95, 0.8
CLEAN_BACKGROUND = 0.1  # brightest background channel, in [0, 1], of a "clean" black image


def _coverage(factor: str, values: np.ndarray) -> float | None:
    """Share of the factor's bins holding >= 1/4 of a uniform bin's share of ``values``."""
    if len(values) == 0:
        return None  # no caption left the factor free (strict JSON has no NaN)
    bins = _BINS[factor]
    if factor == "type":
        counts = np.bincount(values.astype(int), minlength=bins)[:bins]
    else:
        lo, hi = RANGES[factor]
        counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return float(np.mean(counts / len(values) >= 0.25 / bins))


def score(captions: list[str], images: np.ndarray) -> dict:
    """Probe-based quality of images made for ``captions`` (see the module docstring).

    Args:
      captions: n captions of the shapes grammar.
      images: [n, H, W, 3] in [-1, 1].

    Returns:
      JSON-ready dict: n, valid, clean_background (share of images whose background is black),
      fixed (all fixed factors right), fixed_by_factor, coverage (per free factor), span
      (central 95% of x, y, size over their range), n_free, passed.
    """
    m = measure(images)
    specs = {c: spec(c) for c in set(captions)}
    n = len(captions)
    fixed_mask = {f: np.array([f in specs[c].fixed for c in captions]) for f in FACTORS}
    right = {f: np.ones(n, bool) for f in FACTORS}
    for c, s in specs.items():
        rows = np.array([cap == c for cap in captions])
        for f in s.fixed:
            right[f][rows] = obeys(s, f, m[f][rows])
    valid = m["valid"]
    any_fixed = np.any([fixed_mask[f] for f in FACTORS], axis=0)
    all_right = valid & np.all([right[f] for f in FACTORS], axis=0)
    out = {"n": n, "valid": float(valid.mean()),
           "clean_background": float(np.mean(m["background"] <= CLEAN_BACKGROUND)),
           "fixed": float(all_right[any_fixed].mean()) if any_fixed.any() else None,
           "fixed_by_factor": {}, "coverage": {}, "span": {}, "n_free": {}}
    for f in FACTORS:
        if fixed_mask[f].any():
            out["fixed_by_factor"][f] = float((right[f] & valid)[fixed_mask[f]].mean())
        free = valid & ~fixed_mask[f]
        out["n_free"][f] = int(free.sum())
        out["coverage"][f] = _coverage(f, m[f][free])
        if f in CONTINUOUS and f != "hue" and free.sum() > 1:
            lo, hi = RANGES[f]
            q = np.quantile(m[f][free], [0.025, 0.975])
            out["span"][f] = float((q[1] - q[0]) / (hi - lo))
    coverages = [c for c in out["coverage"].values() if c is not None]
    out["passed"] = bool((out["fixed"] is None or out["fixed"] >= FIXED_TARGET) and
                         min(coverages, default=1.0) >= COVERAGE_TARGET)
    return out


def evaluate(folder: str | Path, n: int = 512, n_heldout: int = 128, steps: int = 50,
             guidance: tuple[float, ...] = (3.0,), seed: int = 0, batch: int = 256,
             grid: str | Path | None = None, save_samples: str | Path | None = None) -> dict:
    """Samples a trained model and scores it on training and held-out captions.

    Args:
      folder: pipeline folder written by `train.run`.
      n: samples for captions drawn from the training caption distribution (no empty caption).
      n_heldout: samples for captions drawn uniformly from `HELDOUT_CAPTIONS`.
      steps, guidance: DDIM steps and the CFG scales to evaluate (one entry per scale).
      grid: if given, a PNG of the first 64 samples of the first scale is written here.
      save_samples: if given, an .npz of the captions and uint8 images of every scale, so that
        the (slow, on CPU) samples can be scored again.

    Returns:
      {"w=<scale>": {"train": score(...), "heldout": score(...)}, "config": {...}}.
    """
    pipe = load(folder)
    rng = np.random.default_rng(seed)
    train_caps, _ = sample_factors(rng, n)
    held_caps = list(rng.choice(HELDOUT_CAPTIONS, n_heldout)) if n_heldout else []
    caps = train_caps + [str(c) for c in held_caps]
    result: dict = {"config": {"n": n, "n_heldout": n_heldout, "steps": steps, "seed": seed}}
    samples: dict[str, np.ndarray] = {}
    for i, w in enumerate(guidance):
        images = generate(pipe, caps, jax.random.key(seed), steps, w, batch)
        result[f"w={w:g}"] = {"train": score(train_caps, images[:n])}
        if n_heldout:
            result[f"w={w:g}"]["heldout"] = score(caps[n:], images[n:])
        if grid is not None and i == 0:
            save_grid(images[:64], grid)
        samples[f"images_w{w:g}"] = to_uint8(images)
    if save_samples is not None:
        np.savez_compressed(save_samples, captions=np.array(caps), **samples)
    return result


def save_grid(images: np.ndarray, path: str | Path, cols: int = 8) -> None:
    """Writes [n, H, W, 3] images in [-1, 1] as one PNG grid, 4x enlarged."""
    from PIL import Image
    u8 = to_uint8(images)
    n, h, w, _ = u8.shape
    rows = -(-n // cols)
    canvas = np.zeros((rows * (h + 1), cols * (w + 1), 3), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = u8[i]
    Image.fromarray(canvas).resize((canvas.shape[1] * 4, canvas.shape[0] * 4),
                                   Image.NEAREST).save(path)
