"""What changes along a steering direction, measured on the images rendered along it.

For any model: brightness, contrast and colourfulness of each image, their change per unit of
strength (a least-squares slope over the strengths, pooled over seeds), and a heat map of where
in the image the pixels change (mean absolute change against the unsteered image). On a world
with a probe (`PROBES`: the shapes or scenes world's factor read-out), the probe's factors per
unit strength as well ("size -0.04 per unit, hue +2 deg per unit").

Axis letters: s seeds, a strengths, h, w, c image height, width, channels. Images are floats in
[-1, 1], as `jaxsteer.steer.render_batches` returns them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxsteer.scenes.probe import measure as scenes_measure
from jaxsteer.shapes.probe import measure

# ITU-R BT.601 luma weights.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _unit(images: np.ndarray) -> np.ndarray:
    return (np.asarray(images, np.float32) + 1.0) / 2.0


def image_stats(images_hwc: np.ndarray) -> dict[str, np.ndarray]:
    """Per image [...]: brightness (mean luma, 0-1), contrast (std of luma) and colourfulness
    (Hasler and Suesstrunk 2003, on a 0-1 scale), for images [..., h, w, 3] in [-1, 1]."""
    x = _unit(images_hwc)
    luma = x @ _LUMA
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    axes = (-2, -1)
    colour = (np.sqrt(rg.std(axes) ** 2 + yb.std(axes) ** 2)
              + 0.3 * np.sqrt(rg.mean(axes) ** 2 + yb.mean(axes) ** 2))
    return {"brightness": luma.mean(axes), "contrast": luma.std(axes), "colourfulness": colour}


def slope(values_sa: np.ndarray, alphas_a: np.ndarray) -> float:
    """Change per unit strength: the least-squares slope of values [s, a] on the strengths,
    one line per seed with a common slope (each seed centred on its own mean)."""
    v = np.asarray(values_sa, np.float64)
    a = np.asarray(alphas_a, np.float64)
    ok = np.isfinite(v)
    v_c = v - np.nanmean(np.where(ok, v, np.nan), axis=1, keepdims=True)
    a_c = np.broadcast_to(a - a.mean(), v.shape)
    den = np.sum(np.where(ok, a_c ** 2, 0.0))
    return float(np.sum(np.where(ok, a_c * v_c, 0.0)) / den) if den > 0 else 0.0


def heat_map(images_sahwc: np.ndarray, unsteered_shwc: np.ndarray) -> np.ndarray:
    """[h, w] mean absolute pixel change against the unsteered image (0-1 scale), over seeds,
    strengths and channels."""
    diff = np.abs(_unit(images_sahwc) - _unit(unsteered_shwc)[:, None])
    return diff.mean((0, 1, 4))


def _wrapped_degrees(hue_sa: np.ndarray, base_s: np.ndarray) -> np.ndarray:
    """Hue relative to the unsteered image's, in (-180, 180]: a step over 0 deg is small."""
    return base_s[:, None] + (hue_sa - base_s[:, None] + 180.0) % 360.0 - 180.0


def shapes_factors(images_sahwc: np.ndarray, unsteered_shwc: np.ndarray,
                   alphas_a: np.ndarray, measure: Callable = measure) -> dict[str, float]:
    """The shapes world's factors per unit strength (size, x, y in fractions of the image
    side; hue in degrees), and the share of steered images whose shape type changed.
    ``measure``: the probe (the scenes probe returns the same keys for its shape)."""
    s, a = images_sahwc.shape[:2]
    m = measure(np.asarray(images_sahwc).reshape(s * a, *images_sahwc.shape[2:]))
    m = {k: v.reshape(s, a) for k, v in m.items()}
    base = measure(np.asarray(unsteered_shwc))
    nan = lambda k: np.where(m["valid"], m[k], np.nan)  # noqa: E731 - no shape, no reading
    out = {k: slope(nan(k), alphas_a) for k in ("size", "x", "y")}
    out["hue_deg"] = slope(np.where(m["valid"], _wrapped_degrees(m["hue"], base["hue"]), np.nan),
                           alphas_a)
    steered = np.abs(np.asarray(alphas_a)) > 1e-9
    changed = (m["type"] != base["type"][:, None])[:, steered]
    out["type_changed"] = float(changed.mean()) if changed.size else 0.0
    return out


def scenes_factors(images_sahwc: np.ndarray, unsteered_shwc: np.ndarray,
                   alphas_a: np.ndarray) -> dict[str, float]:
    """`shapes_factors` of the scenes world's shape, read by the scenes probe."""
    return shapes_factors(images_sahwc, unsteered_shwc, alphas_a, scenes_measure)


# Probes by name: f(images [s, a, h, w, c], unsteered [s, h, w, c], alphas [a]) -> factors.
PROBES: dict[str, Callable[..., dict[str, float]]] = {"shapes": shapes_factors,
                                                      "scenes": scenes_factors}


def _round(x: float, digits: int = 3) -> float:
    """``digits`` significant digits: effects are measurements, not 17-digit floats."""
    if not np.isfinite(x):
        return float("nan")
    return 0.0 if abs(x) < 1e-6 else float(f"{x:.{digits}g}")  # float32 noise reads as none


def describe(images_sahwc: np.ndarray, unsteered_shwc: np.ndarray, alphas_a: np.ndarray,
             probe: str | None = None) -> dict:
    """Every measured effect of one direction, rounded, JSON-ready.

    Returns:
      {"per_unit": {"brightness", "contrast", "colourfulness": slopes per unit strength},
       "mean_abs_change": mean of the heat map, "probe": {factor: slope} or None}.
    """
    stats = image_stats(images_sahwc)
    per_unit = {k: _round(slope(v, alphas_a)) for k, v in stats.items()}
    factors = None
    if probe is not None:
        factors = {k: _round(v) for k, v in
                   PROBES[probe](images_sahwc, unsteered_shwc, alphas_a).items()}
    return {"per_unit": per_unit,
            "mean_abs_change": _round(float(heat_map(images_sahwc, unsteered_shwc).mean())),
            "probe": factors}


def summary(effects: dict) -> str:
    """One line: 'brightness +0.012, contrast -0.003, colourfulness +0.02 per unit; probe:
    size -0.04, hue +2 deg per unit, type changed in 10%'."""
    text = ", ".join(f"{k} {v:+.2g}" for k, v in effects["per_unit"].items()) + " per unit"
    probe = effects.get("probe")
    if probe:
        parts = [f"{k} {v:+.2g}" for k, v in probe.items() if k not in ("hue_deg", "type_changed")]
        parts.append(f"hue {probe['hue_deg']:+.2g} deg")
        text += "; probe: " + ", ".join(parts) + " per unit"
        text += f", type changed in {100 * probe['type_changed']:.0f}%"
    return text
