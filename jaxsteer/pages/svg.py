"""Inline SVG charts: a spectrum with its significance line, a thumbnail of it, a histogram.

Inline SVG stays sharp at any zoom, weighs a few hundred bytes, and needs no plotting library
at report time.
"""

from __future__ import annotations

import numpy as np

from jaxsteer.pages.html import esc, fmt


def bars(values, *, width: int = 640, height: int = 220, threshold: float | None = None,
         labels: list[str] | None = None, highlight=None, axes: bool = True,
         title: str = "") -> str:
    """A bar chart of ``values``; bars above ``threshold`` (or where ``highlight`` is true) are
    blue, the rest grey; ``threshold`` is drawn as a dashed red line. ``labels`` go under
    every bar when they fit (else every few)."""
    v = np.nan_to_num(np.asarray(values, np.float64))
    n = max(len(v), 1)
    left, bottom, top = (46, 22, 8) if axes else (1, 1, 1)
    w, h = width - left - 4, height - bottom - top
    vmax = max(float(v.max()) if len(v) else 0.0, threshold or 0.0) or 1.0
    step = w / n
    hi = v > threshold if highlight is None and threshold is not None else (
        np.asarray(highlight, bool) if highlight is not None else np.ones(len(v), bool))
    parts = [f'<svg width="{width}" height="{height}" '
             f'role="img" aria-label="{esc(title or "bar chart")}">']
    if title:
        parts.append(f"<title>{esc(title)}</title>")
    for i, x in enumerate(v):
        bh = h * x / vmax
        colour = "#3b78c2" if hi[i] else "#aaa"
        label = labels[i] if labels else str(i)
        parts.append(f'<rect x="{left + i * step + step * 0.1:.1f}" y="{top + h - bh:.1f}" '
                     f'width="{step * 0.8:.1f}" height="{bh:.1f}" fill="{colour}">'
                     f"<title>{esc(label)}: {fmt(float(x), 4)}</title></rect>")
    if threshold is not None:
        y = top + h - h * threshold / vmax
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#d33" stroke-dasharray="4 3"/>')
    if axes:
        every = max(1, int(np.ceil(n / (w / 24))))
        for i in range(0, n, every):
            label = labels[i] if labels else str(i)
            parts.append(f'<text x="{left + (i + 0.5) * step:.1f}" y="{height - 6}" '
                         f'font-size="11" text-anchor="middle">{esc(label)}</text>')
        for frac in (0, 0.5, 1):
            y = top + h - h * frac
            parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
                         f'text-anchor="end">{fmt(vmax * frac, 2)}</text>')
        parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + h}" stroke="#444"/>'
                     f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" '
                     'stroke="#444"/>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(values, bins: int | None = None, width: int = 640, height: int = 220,
              title: str = "") -> str:
    """Counts of ``values`` in equal bins, labelled with the bins' lower edges."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return "<p class='muted'>no values</p>"
    bins = bins or int(np.clip(len(v) // 3, 5, 30))
    if v.min() == v.max():
        bins = 1
    counts, edges = np.histogram(v, bins=bins)
    return bars(counts, width=width, height=height, labels=[fmt(float(e), 3) for e in edges[:-1]],
                title=title or "histogram")
