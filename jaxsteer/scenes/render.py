"""The scenes renderer: one shape (the shapes world's, `jaxsteer.shapes.render`) on a grey-level
background, solid or striped, with or without a small dot; numpy or jnp, vectorised.

Every colour in the image but the shape's is achromatic (background, dot), and the shape's
colour is fully saturated (``min(rgb) == 0``), so a pixel of coverage ``a`` and stripe level
``s`` is ``(1 - a) * base + a * s * colour`` and its chroma ``max(rgb) - min(rgb)`` is exactly
``a * s`` on any background: the probe reads the shape from the chroma alone.

- texture: horizontal stripes at fixed image rows (period 1/8 of the image, 8 px at 64), the
  dim rows at `STRIPE_DIM` of the colour (not holes: the shape's outline stays whole);
- background: grey level 0 (black), 0.5 (grey), 1 (white);
- dot: a disc of radius `DOT_R` at `DOT_XY`, black on grey and white, white on black, in front
  of the shape (a large shape in the top right corner can reach it: then the dot hides a few
  of its pixels, about 1% of draws with a dot).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsteer.scenes.prompts import sample_captions
from jaxsteer.shapes.render import alpha_mask, hue_to_rgb

BACKGROUND_LEVELS = (0.0, 0.5, 1.0)
STRIPE_DIM = 0.4
STRIPE_BANDS = 16        # bright and dim bands per image height (4 px each at 64 px)
DOT_XY, DOT_R = (0.9, 0.1), 0.045


def stripe_rows(size: int, xp: Any = np) -> Any:
    """[H] bool: whether each pixel row is a bright row of a striped shape."""
    centre = (xp.arange(size, dtype=xp.float32) + 0.5) * STRIPE_BANDS / size
    return xp.mod(xp.floor(centre), 2.0) == 0.0


def dot_level(background_b: Any, xp: Any = np) -> Any:
    """[b] grey level of the dot: white on a black background, black otherwise."""
    return xp.where(background_b == 0, 1.0, 0.0).astype(xp.float32)


def render(factors: dict[str, Any], size: int = 64, xp: Any = np) -> Any:
    """One scene per row of ``factors`` (see captions.py) -> [b, size, size, 3] in [-1, 1]."""
    f32 = xp.float32
    b = factors["type"].shape[0]
    alpha_bhw = alpha_mask(factors, size, xp)
    dot = {"type": xp.zeros((b,), xp.int32), "x": xp.full((b,), DOT_XY[0], f32),
           "y": xp.full((b,), DOT_XY[1], f32), "size": xp.full((b,), DOT_R, f32)}
    dot_bhw = alpha_mask(dot, size, xp) * factors["dot"].astype(f32)[:, None, None]
    bg_b = xp.asarray(BACKGROUND_LEVELS, f32)[factors["background"]]
    striped = factors["texture"].astype(xp.int32)[:, None] == 1
    level_bh = xp.where(striped & ~stripe_rows(size, xp)[None, :], STRIPE_DIM, 1.0).astype(f32)
    paint_bhw = alpha_bhw * level_bh[:, :, None]
    rgb = (bg_b[:, None, None] * (1.0 - alpha_bhw))[..., None] \
        + paint_bhw[..., None] * hue_to_rgb(factors["hue"], xp)[:, None, None, :]
    dot_c = dot_level(factors["background"], xp)[:, None, None, None]
    rgb = rgb * (1.0 - dot_bhw[..., None]) + dot_c * dot_bhw[..., None]
    return (rgb * 2.0 - 1.0).astype(f32)


def sample_batch(rng: np.random.Generator, n: int, size: int = 64, p_uncond: float = 0.0
                 ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Training data: (images [n, size, size, 3] in [-1, 1], captions, factors)."""
    captions, factors = sample_captions(rng, n, p_uncond)
    return render(factors, size), captions, factors


__all__ = ["BACKGROUND_LEVELS", "DOT_R", "DOT_XY", "STRIPE_DIM", "render", "sample_batch",
           "stripe_rows"]
