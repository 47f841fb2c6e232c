"""A self-contained static HTML page of a run, survey or diversify folder: images inlined, no
network needed. The pieces live in `jaxsteer.pages`; this module finds what a folder holds.

- a survey folder (``survey.json``, ``records-*.jsonl``): prompts ranked by complexity;
- a diversify folder (``diversity.json``): samples without and with steering, with metrics;
- a run folder (as `jaxsteer demo` writes it, or a gradient store): settings, the spectrum,
  every steer folder's directions with their measured effects and scrubbers, and any
  diversify or SAE results inside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxsteer import checkpoint, records
from jaxsteer.config import opt
from jaxsteer.decompose.directions import SIGNIFICANCE_FACTOR
from jaxsteer.errors import UserError
from jaxsteer.pages import html as h
from jaxsteer.pages.directions import directions_html, effects_rows
from jaxsteer.pages.diversity import diversity_html
from jaxsteer.pages.survey import is_survey, survey_html
from jaxsteer.pages.svg import bars
from jaxsteer.store import read_manifest


def facts_from_manifest(manifest: dict) -> dict:
    ident = manifest.get("identity", manifest)
    keys = ("model", "prompt", "token", "token_rows", "embed_dim", "feature", "steps",
            "timesteps", "guidance", "seed")
    return {k: json.dumps(ident[k]) if isinstance(ident.get(k), list) else ident.get(k)
            for k in keys if k in ident}


def _find(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def spectrum_html(ds) -> str:
    """The leading explained-variance ratios (0-based, as the directions), significant in blue,
    and the 2.5 / D line; enough bars to show the significant ones and what follows."""
    ratios = np.asarray(ds.explained_variance_ratio, np.float64)
    sig = ds.significant_count()
    shown = ratios[: max(16, min(2 * sig + 4, 64))]
    threshold = SIGNIFICANCE_FACTOR / ds.dim
    return (f"<p>{sig} of {len(ratios)} computed components are significant (explained-"
            f"variance ratio above 2.5 / D = {h.fmt(threshold)}); the first {len(shown)} "
            f"shown.</p>" + bars(shown, threshold=threshold, title="explained-variance ratio"))


def _sae_table(meta: dict) -> str:
    return h.table(["SAE metric", "value"], list(meta["sae_metrics"].items()), numeric=[1])


def run_sections(root: Path) -> list[str]:
    """Every section a run folder holds, in reading order."""
    parts = []
    for files in _find(root, f"**/{checkpoint.FILES}"):
        ds = checkpoint.load(files.parent)  # verified checkpoints only
        name = files.parent.relative_to(root)
        if ds.explained_variance_ratio is not None:
            parts += [f"<h2>Spectrum of the gradients ({h.esc(name)})</h2>", spectrum_html(ds)]
        if ds.metadata.get("sae_metrics"):
            parts += [f"<h2>SAE ({h.esc(files.parent.name)})</h2>", _sae_table(ds.metadata)]
    steer_dirs = [p.parent for p in _find(root, "**/steer.json")]
    for folder in steer_dirs:
        meta = records.read_json(folder / "steer.json")
        parts += [f"<h2>What each direction does ({h.esc(folder.relative_to(root))})</h2>",
                  h.table(["direction", "significant", "measured change per unit strength"],
                          effects_rows(meta), numeric=[0]),
                  directions_html(folder)]
    for grid in _find(root, "**/direction_*.png"):
        if grid.parent not in steer_dirs:  # grids without a steer.json: older steer runs
            parts += [f"<h3>{h.esc(grid.stem.replace('_', ' '))}</h3>",
                      h.img(h.png_uri(grid.read_bytes()), grid.stem)]
    for path in _find(root, "**/diversity.json"):
        parts += [f"<h2>Diversity ({h.esc(path.parent.relative_to(root))})</h2>",
                  diversity_html(path.parent)]
    return parts


def build(root: Path, title: str | None = None, extra_facts: dict | None = None) -> Path:
    """Writes ``root/report.html`` for whatever ``root`` holds; returns its path."""
    if is_survey(root):
        page_title, body = survey_html(root)
    elif (root / "diversity.json").exists():
        page_title, body = f"jaxsteer diversify: {root.name}", diversity_html(root)
    else:
        store = root if (root / "manifest.json").exists() else root / "grads"
        facts = (facts_from_manifest(read_manifest(store))
                 if (store / "manifest.json").exists() else {})
        facts |= extra_facts or {}
        sections = run_sections(root)
        if not (facts or sections):
            raise UserError(f"{root} holds nothing to report (no gradient store, directions, "
                            "steering, diversity or survey results)")
        page_title = f"jaxsteer: {facts.get('prompt', root.name)!r}"
        body = h.facts_table(facts) + "\n" + "\n".join(sections)
    path = root / "report.html"
    records.atomic_write_text(path, h.page(title or page_title, body))
    return path


@dataclasses.dataclass(frozen=True)
class ReportRun:
    run_dir: Path = opt(Path("."), "a run folder (as `jaxsteer demo` writes: grads/, "
                        "directions*/, steer*/, diversify*/), a gradient store, a survey "
                        "folder or a diversify folder", positional=True)
    title: str | None = opt(None, "page title (default: the prompt or the folder's name)")


def run(cfg: ReportRun) -> dict:
    """Collects what a folder holds into ``report.html`` inside it."""
    root = cfg.run_dir
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    records.check_out(root, "run folder")  # report.html goes beside the run
    path = build(root, cfg.title)
    print(f"wrote {path}")
    page = path.read_text()
    return {"report": str(path), "directions": page.count('class="card" id="direction-'),
            "images": page.count("data:image/png;base64,"),
            "sliders": page.count('type="range"')}
