"""The pieces every page is built from: escaped text, rounded numbers, inlined images, tables.

A page is one self-contained file: images are base64 PNG data URIs, charts inline SVG, the
scrubber's script inline; nothing is fetched from a server or the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from typing import Any

import numpy as np

CSS = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;
color:#222}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}
td,th{padding:.2em .7em;text-align:left;vertical-align:middle}
table.data tr:nth-child(even){background:#f5f5f5}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
img.px{image-rendering:pixelated;border:1px solid #ccc}
.card{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:1em 0}
.badge{font-size:.8em;padding:.1em .5em;border-radius:1em;margin-left:.5em;color:#fff}
.sig{background:#2a7}.nosig{background:#999}
.frames{display:flex;flex-wrap:wrap;gap:1em}.frames figure{margin:0;text-align:center}
figcaption{font-size:.85em;color:#555}
input[type=range]{width:260px;vertical-align:middle}
.muted{color:#777;font-size:.9em}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers rounded for people: 3 significant digits for floats, lists joined."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def signed(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}g}" if value == value else "-"


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float images (any leading axes) -> uint8 [0, 255], rounded: the one converter of
    every saved or shown image."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def array_png(image_hwc: np.ndarray, max_side: int = 256) -> bytes:
    """A uint8 image [h, w, 3] (or [h, w]) as PNG bytes, shrunk to ``max_side`` if larger (a
    scrubber of 1024 px SDXL frames would otherwise weigh hundreds of megabytes)."""
    from PIL import Image
    img = Image.fromarray(np.asarray(image_hwc, np.uint8))
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def img(src: str, alt: str, width: int | None = None, cls: str = "", attrs: str = "") -> str:
    """An <img>; small images are shown enlarged with crisp pixels (class ``px``)."""
    size = f' width="{width}"' if width else ""
    klass = f' class="{cls}"' if cls else ""
    return f'<img alt="{esc(alt)}" src="{src}"{size}{klass}{attrs}>'


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], numeric: Iterable[int] = (),
          cls: str = "data") -> str:
    """A table of pre-rendered cells (strings are escaped; wrap HTML in `Raw`)."""
    numeric = set(numeric)

    def cell(tag: str, j: int, v: Any) -> str:
        text = v.html if isinstance(v, Raw) else esc(fmt(v))
        return f'<{tag}{" class=num" if j in numeric else ""}>{text}</{tag}>'
    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", j, v) for j, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Raw:
    """HTML that a table cell takes as it is (an image, a chart)."""

    def __init__(self, html_text: str):
        self.html = html_text


def facts_table(facts: dict) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in facts.items())
    return f"<table class='facts'>{rows}</table>"


def page(title: str, body: str, script: str = "") -> str:
    """The whole document: one file, no external resources."""
    tail = f"<script>{script}</script>" if script else ""
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>" + esc(title)
            + f"</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>\n{body}\n"
            + tail + "</body></html>\n")
