"""A self-contained static HTML page of a demo or run folder: images inlined, no network needed."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from jaxsteer import records


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_report(out: Path, title: str, facts: dict, spectrum_png: Path | None,
                 grids: list[Path], tables: dict[str, str] | None = None) -> Path:
    """Writes ``out/report.html``; returns its path."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts.items())
    parts = [f"<h1>{html.escape(title)}</h1>", f"<table class='facts'>{rows}</table>"]
    if spectrum_png is not None and spectrum_png.exists():
        parts += ["<h2>Spectrum of the gradients</h2>", _img(spectrum_png, "spectrum")]
    for name, text in (tables or {}).items():
        parts += [f"<h2>{html.escape(name)}</h2>", f"<pre>{html.escape(text)}</pre>"]
    if grids:
        parts.append("<h2>Steering grids</h2><p>Rows: seeds; columns: strength alpha "
                     "(multiples of the word's embedding norm). Alpha 0 is the unsteered image.</p>")
        for g in grids:
            parts += [f"<h3>{html.escape(g.stem.replace('_', ' '))}</h3>", _img(g, g.stem)]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table.facts th{text-align:left;padding-right:1em}img{max-width:100%}</style>"
            "</head><body>" + "\n".join(parts) + "</body></html>\n")
    path = out / "report.html"
    records.atomic_write_text(path, page)
    return path


def facts_from_manifest(manifest: dict) -> dict:
    ident = manifest.get("identity", manifest)
    keys = ("model", "prompt", "token", "token_rows", "embed_dim", "feature", "steps",
            "timesteps", "guidance", "seed")
    return {k: json.dumps(ident[k]) if isinstance(ident.get(k), list) else ident.get(k)
            for k in keys if k in ident}
