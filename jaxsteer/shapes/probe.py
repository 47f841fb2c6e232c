"""Reads the factors of the shapes world back from any image, rendered or generated.

The background is black and the shape's colour has ``max(rgb) == 1``, so a pixel's largest
channel is its coverage ``alpha``. Generated images may carry a faint colour wash and speckle
over the background, so the probe first subtracts each image's background colour (its
per-channel median: a shape covers at most 20% of the image) and rescales, which is the identity
on rendered images.
From the coverage map:

- position: the alpha-weighted centroid;
- type: a triangle's vertical profile is lopsided (skewness of the row mass -0.57; circle and
  square 0); the fill ratio area / (width * height) then tells the square (1) from the circle
  (pi/4), where width and height are sums of per-column / per-row maximum coverage (sub-pixel,
  unlike a thresholded box). The fill ratio alone misses small triangles, whose thin tip rows
  barely count in the height;
- size: from the area and the type's area constant (area = k r^2: pi, 4, sqrt(3));
- hue: the hue of the mean colour sum(rgb) / sum(alpha).

All of it is vectorised over the batch; a few thousand 32 x 32 images take milliseconds.
"""

from __future__ import annotations

import numpy as np

from jaxsteer.shapes.captions import TYPES

# Decision boundaries: |skewness| midway between 0 and 0.57, fill midway between pi/4 and 1.
SKEW_EDGE = 0.3
FILL_EDGE = 0.89
AREA_CONSTANT = np.array([np.pi, 4.0, np.sqrt(3.0)])
# Coverage below this is treated as background: generated backgrounds are not exactly black.
ALPHA_FLOOR = 0.15
# A shape smaller than this many pixels of area is no shape (an empty or failed sample).
MIN_AREA_PX = 4.0


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """[b, H, W] bool -> the mask grown by ``steps`` pixels (3 x 3 neighbourhood each step)."""
    for _ in range(steps):
        p = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
        h, w = mask.shape[1:]
        mask = np.any([p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    return mask


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """[b, H, W] bool -> [b, H, W] count of set pixels in each 3 x 3 neighbourhood."""
    p = np.pad(mask, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
    h, w = mask.shape[1:]
    return sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3))


def rgb_to_hue(rgb_b3: np.ndarray) -> np.ndarray:
    """[b, 3] RGB in [0, 1] -> [b] hue in degrees [0, 360) (0 for grey)."""
    r, g, b = rgb_b3[:, 0], rgb_b3[:, 1], rgb_b3[:, 2]
    mx, mn = rgb_b3.max(1), rgb_b3.min(1)
    c = np.maximum(mx - mn, 1e-8)
    h = np.where(mx == r, np.mod((g - b) / c, 6.0),
                 np.where(mx == g, (b - r) / c + 2.0, (r - g) / c + 4.0))
    return np.mod(h * 60.0, 360.0)


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """Measures the factors of a batch of images.

    Args:
      images: [b, H, W, 3] in [-1, 1] (float) or [0, 255] (uint8), channels last.

    Returns:
      "type" [b] int (-1 when no shape is found), "hue" [b] degrees, "x", "y", "size" [b]
      fractions of the image side (captions.py units), "fill" [b] fill ratio, "skew" [b]
      vertical skewness, "area" [b] pixels, "valid" [b] bool, "background" [b] the brightest
      channel of the background colour in [0, 1] (0 for a clean black background).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        rgb = images.astype(np.float32) / 255.0
    else:
        rgb = (images.astype(np.float32) + 1.0) / 2.0
    rgb = np.clip(rgb, 0.0, 1.0)
    b, h, w, _ = rgb.shape
    background = np.median(rgb.reshape(b, h * w, 3), axis=1)       # [b, 3]
    rgb = rgb - background[:, None, None, :]
    headroom = np.maximum(1.0 - background.max(1), 0.25)[:, None, None]
    alpha = np.clip(rgb.max(-1) / headroom, 0.0, 1.0)
    # Generated images carry speckle: keep only coverage within 1 px of the shape's core
    # (coverage > 0.5, without specks of 1-2 pixels). Rendered images lose nothing: their
    # partial-coverage edge pixels lie within 1 px of the core.
    core = alpha > 0.5
    core &= _neighbours(core) >= 3
    alpha = np.where(_dilate(core, 1) & (alpha >= ALPHA_FLOOR), alpha, 0.0)   # [b, H, W]
    rgb = rgb * (alpha > 0)[..., None]
    area = alpha.sum((1, 2))
    valid = area >= MIN_AREA_PX
    safe = np.maximum(area, 1e-6)
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h
    x = (alpha.sum(1) * xs).sum(1) / safe
    y = (alpha.sum(2) * ys).sum(1) / safe
    width = alpha.max(1).sum(1)                                     # [b] pixels
    height = alpha.max(2).sum(1)
    fill = area / np.maximum(width * height, 1e-6)
    m2 = (alpha.sum(2) * (ys[None] - y[:, None]) ** 2).sum(1) / safe
    m3 = (alpha.sum(2) * (ys[None] - y[:, None]) ** 3).sum(1) / safe
    skew = m3 / np.maximum(m2, 1e-12) ** 1.5
    type_ = np.where(np.abs(skew) > SKEW_EDGE, TYPES.index("triangle"),
                     np.where(fill > FILL_EDGE, TYPES.index("square"), TYPES.index("circle")))
    size = np.sqrt(area / AREA_CONSTANT[type_]) / w
    hue = rgb_to_hue(rgb.sum((1, 2)) / safe[:, None])  # a hue survives a grey offset
    type_ = np.where(valid, type_, -1)
    return {"type": type_, "hue": hue, "x": x, "y": y, "size": size, "fill": fill,
            "skew": skew, "area": area, "valid": valid, "background": background.max(1)}
