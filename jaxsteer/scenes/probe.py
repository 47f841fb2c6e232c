"""Reads every factor of the scenes world back from an image, rendered or generated.

From the chroma ``max(rgb) - min(rgb)`` (= coverage x stripe level, render.py):

- texture: the full-coverage chroma of the shape's pixels on the dim stripe rows over that on
  the bright rows (1 solid, `STRIPE_DIM` striped; edge `STRIPE_EDGE`);
- coverage: chroma divided by the stripe level of its row; then the shapes world's probe
  (`jaxsteer.shapes.probe.measure`) reads type, hue, x, y and size from the image
  ``coverage * unit colour`` on black, which is exactly a shapes render of the same shape;
- background: the grey level nearest the median of ``min(rgb)`` (the shape covers <= 20%);
- dot: the share of the achromatic pixels of the dot's box that differ from the background
  by more than half the dot's contrast.

Vectorised over the batch.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxsteer.scenes.render import BACKGROUND_LEVELS, DOT_R, DOT_XY, STRIPE_DIM, stripe_rows
from jaxsteer.shapes.probe import measure as measure_shape

STRIPE_EDGE = (1.0 + STRIPE_DIM) / 2.0
SHAPE_CHROMA = 0.15      # chroma above this is the shape's (generated images carry a wash)
ACHROMATIC = 0.1
DOT_EDGE = 0.2           # share of the box's achromatic pixels that must be the dot (~0.4)


def _masked_level(x_bn: np.ndarray, mask_bn: np.ndarray) -> np.ndarray:
    """The 80th percentile of ``x`` over the mask: a row's full-coverage level, which the
    partly covered edge pixels (most of a small shape's tip rows) do not pull down."""
    with warnings.catch_warnings():   # an image without shape pixels gives NaN: read as solid
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(np.where(mask_bn, x_bn, np.nan), 80, axis=1)


def _dot_present(mn_bhw: np.ndarray, chroma_bhw: np.ndarray, bg_b: np.ndarray) -> np.ndarray:
    h, w = mn_bhw.shape[1:]
    r = 1.25 * DOT_R
    ys = slice(int((DOT_XY[1] - r) * h), int(np.ceil((DOT_XY[1] + r) * h)))
    xs = slice(int((DOT_XY[0] - r) * w), int(np.ceil((DOT_XY[0] + r) * w)))
    box, grey = mn_bhw[:, ys, xs], chroma_bhw[:, ys, xs] < ACHROMATIC
    contrast = np.where(bg_b == 0.0, 1.0, bg_b)            # dot: white on black, else black
    differs = np.abs(box - bg_b[:, None, None]) > 0.5 * contrast[:, None, None]
    share = (differs & grey).sum((1, 2)) / np.maximum(grey.sum((1, 2)), 1)
    return share > DOT_EDGE


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """Measures the factors of a batch of images.

    Args:
      images: [b, H, W, 3] in [-1, 1] (float) or [0, 255] (uint8), channels last.

    Returns:
      the shapes probe's keys ("type" -1 when no shape is found, "hue", "x", "y", "size",
      "valid", ...; its "background" renamed "wash", the chroma left on the background) and
      "texture", "background", "dot" [b] int, "stripe_ratio" [b], "grey" [b] background level.
    """
    images = np.asarray(images)
    rgb = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else \
        (images.astype(np.float32) + 1.0) / 2.0
    rgb = np.clip(rgb, 0.0, 1.0)
    b, h, w, _ = rgb.shape
    mx, mn = rgb.max(-1), rgb.min(-1)
    chroma = mx - mn
    shape_px = chroma > SHAPE_CHROMA
    bright = np.broadcast_to(stripe_rows(h)[None, :, None], shape_px.shape)
    flat = lambda a: a.reshape(b, h * w)  # noqa: E731
    ratio = (_masked_level(flat(chroma), flat(shape_px & ~bright))
             / np.maximum(_masked_level(flat(chroma), flat(shape_px & bright)), 1e-6))
    striped = ratio < STRIPE_EDGE                               # NaN compares False: solid
    level = np.where(striped[:, None] & ~stripe_rows(h)[None, :], STRIPE_DIM, 1.0)
    alpha = np.clip(chroma / level[:, :, None], 0.0, 1.0)
    unit = (rgb - mn[..., None]) / np.maximum(chroma, 1e-6)[..., None]
    out = measure_shape(alpha[..., None] * unit * 2.0 - 1.0)
    out["wash"] = out.pop("background")
    grey = np.median(mn.reshape(b, h * w), axis=1)
    levels = np.asarray(BACKGROUND_LEVELS, np.float32)
    background = np.abs(grey[:, None] - levels[None]).argmin(1)
    out.update(texture=striped.astype(np.int32), stripe_ratio=ratio, grey=grey,
               background=background.astype(np.int32),
               dot=_dot_present(mn, chroma, levels[background]).astype(np.int32))
    return out


__all__ = ["measure"]
