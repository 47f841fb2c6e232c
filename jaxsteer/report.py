"""A self-contained static HTML page of a demo or run folder: images inlined, no network needed."""

from __future__ import annotations

import base64
import html
import json
import dataclasses
from pathlib import Path

from jaxsteer import records
from jaxsteer.config import opt
from jaxsteer.errors import UserError


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


@dataclasses.dataclass(frozen=True)
class ReportRun:
    run_dir: Path = opt(Path("."), "a run folder (as `jaxsteer demo` writes: grads/, "
                        "directions*/, steer*/, diversify*/), or a gradient store", positional=True)
    title: str | None = opt(None, "page title (default: the prompt)")


def _find(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def run(cfg: ReportRun) -> dict:
    """Collects what a run folder holds into ``report.html`` beside it."""
    from jaxsteer.store import read_manifest

    root = cfg.run_dir
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    records.check_out(root, "run folder")  # report.html goes beside the run
    store = root if (root / "manifest.json").exists() else root / "grads"
    facts = facts_from_manifest(read_manifest(store)) if (store / "manifest.json").exists() else {}
    spectra = _find(root, "**/spectrum.png")
    grids = _find(root, "**/direction_*.png")
    tables = {}
    for path in _find(root, "**/diversity.json"):
        d = json.loads(path.read_text())
        lines = [f"{'':10}{'pairwise cos dist':>20}{'Vendi':>10}"]
        lines += [f"{k:10}{v['pairwise_cosine_distance']:>20.4f}{v['vendi']:>10.3f}"
                  for k, v in d.items() if isinstance(v, dict)]
        tables[f"Diversity ({path.parent.name})"] = "\n".join(lines)
    from jaxsteer import checkpoint
    for files in _find(root, f"**/{checkpoint.FILES}"):
        meta = checkpoint.load(files.parent).metadata  # verified checkpoints only
        if meta.get("sae_metrics"):
            m = meta["sae_metrics"]
            tables[f"SAE ({files.parent.name})"] = "\n".join(
                f"{k:>20}: {v:.4g}" if isinstance(v, float) else f"{k:>20}: {v}"
                for k, v in m.items())
    if not (facts or spectra or grids or tables):
        raise UserError(f"{root} holds nothing to report (no gradient store, spectrum, grids "
                        "or diversity results)")
    title = cfg.title or f"jaxsteer: {facts.get('prompt', root.name)!r}"
    path = write_report(root, title, facts, spectra[0] if spectra else None, grids, tables)
    print(f"wrote {path}")
    return {"report": str(path), "grids": len(grids), "tables": len(tables)}
