"""An anti-aliased renderer of one shape on a black background, and a batch sampler.

The renderer is written once against an array module ``xp`` (numpy or jax.numpy), so the same
code makes the numpy reference images and the training images inside the jitted train step
(no host-side rendering, no host-to-device image copies).

Images are [b, H, W, 3] float32 in [-1, 1] (channels last, like the models' ``decode``); the
background is -1 (black) and a pixel of the shape is ``alpha * colour``, where ``alpha`` is the
pixel's coverage and the colour is fully saturated and bright, so ``max(rgb) == alpha``.
Coverage is analytic: exact for the square's axis-aligned edges, a linear ramp over one pixel
for the circle and the triangle's slanted edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsteer.pages.html import to_uint8 as to_uint8  # the one converter, re-exported
from jaxsteer.shapes.captions import BandTable, training_distribution

_SQRT3 = 3.0 ** 0.5


def _coverage(d: Any, xp: Any) -> Any:
    """Pixel coverage from a signed distance (pixels, negative inside) of the pixel centre."""
    return xp.clip(0.5 - d, 0.0, 1.0)


def alpha_mask(factors: dict[str, Any], size: int, xp: Any = np) -> Any:
    """[b, H, W] coverage in [0, 1] of each shape; factors are [b] arrays (see captions.py)."""
    f32 = xp.float32
    pix = (xp.arange(size, dtype=f32) + 0.5)[None, None, :]     # [1, 1, W] pixel centres
    px, py = pix, xp.swapaxes(pix, 1, 2)                         # [1,1,W], [1,H,1]
    cx = (factors["x"].astype(f32) * size)[:, None, None]
    cy = (factors["y"].astype(f32) * size)[:, None, None]
    r = (factors["size"].astype(f32) * size)[:, None, None]
    dx, dy = px - cx, py - cy
    circle = _coverage(xp.sqrt(dx * dx + dy * dy) - r, xp)
    square = _coverage(xp.abs(dx) - r, xp) * _coverage(xp.abs(dy) - r, xp)
    # Upright equilateral triangle of side 2r whose area centroid is (cx, cy): the base lies
    # h/3 below the centroid (h = sqrt(3) r); the slanted edges have outward normals
    # (-+sqrt(3)/2, -1/2) and pass through the base corners (cx -+ r, base).
    below_base = dy - r / _SQRT3
    left = -0.5 * _SQRT3 * (dx + r) - 0.5 * below_base
    right = 0.5 * _SQRT3 * (dx - r) - 0.5 * below_base
    triangle = _coverage(below_base, xp) * _coverage(left, xp) * _coverage(right, xp)
    t = factors["type"][:, None, None]
    return xp.where(t == 0, circle, xp.where(t == 1, square, triangle)).astype(f32)


def hue_to_rgb(hue_b: Any, xp: Any = np) -> Any:
    """[b] hues in degrees -> [b, 3] fully saturated, bright RGB in [0, 1]."""
    h = hue_b.astype(xp.float32)[:, None] / 60.0
    k = xp.mod(xp.asarray([5.0, 3.0, 1.0], xp.float32)[None, :] + h, 6.0)
    return 1.0 - xp.clip(xp.minimum(k, 4.0 - k), 0.0, 1.0)


def render(factors: dict[str, Any], size: int = 32, xp: Any = np) -> Any:
    """Renders one shape per row of ``factors`` -> [b, size, size, 3] float32 in [-1, 1].

    Args:
      factors: "type" [b] int (0 circle, 1 square, 2 triangle), "hue" [b] degrees, "x", "y",
        "size" [b] fractions of the image side (see captions.py).
      size: image side in pixels (32 for the bundled model; 64 works the same).
      xp: numpy or jax.numpy.
    """
    alpha_bhw = alpha_mask(factors, size, xp)
    rgb_b3 = hue_to_rgb(factors["hue"], xp)
    return alpha_bhw[..., None] * rgb_b3[:, None, None, :] * 2.0 - 1.0


def sample_factors(rng: np.random.Generator, n: int, captions: tuple[str, ...] | None = None,
                   p_uncond: float = 0.0) -> tuple[list[str], dict[str, np.ndarray]]:
    """Draws n captions and factors that obey them.

    Args:
      rng: numpy generator (all randomness of the draw).
      n: batch size.
      captions: draw uniformly from these; None draws from the training caption distribution,
        with the empty caption at probability ``p_uncond``.

    Returns:
      (captions [n], factors: "type" [n] int32 and "hue", "x", "y", "size" [n] float32).
    """
    if captions is None:
        pool, weights = training_distribution(p_uncond)
    else:
        pool, weights = tuple(captions), None
    table = BandTable.build(pool) if captions is not None else _training_table(p_uncond)
    idx = rng.choice(len(pool), size=n, p=weights)
    return [pool[i] for i in idx], table.draw(rng, idx)


_TABLES: dict[float, BandTable] = {}


def _training_table(p_uncond: float) -> BandTable:
    # Parsing ~800 captions takes milliseconds, but a training loop asks for it every step.
    if p_uncond not in _TABLES:
        _TABLES[p_uncond] = BandTable.build(training_distribution(p_uncond)[0])
    return _TABLES[p_uncond]


def sample_batch(rng: np.random.Generator, n: int, size: int = 32,
                 captions: tuple[str, ...] | None = None, p_uncond: float = 0.0,
                 ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Training data on the fly: (images [n, size, size, 3] float32 in [-1, 1], captions,
    factors)."""
    caps, factors = sample_factors(rng, n, captions, p_uncond)
    return render(factors, size), caps, factors


__all__ = ["alpha_mask", "hue_to_rgb", "render", "sample_batch", "sample_factors", "to_uint8"]
