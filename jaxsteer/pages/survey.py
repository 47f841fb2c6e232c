"""A survey folder as a page: prompts ranked by complexity with their intervals, the
distribution, each prompt's spectrum as a thumbnail, and the lines that were skipped.

Reads what `jaxsteer.survey.run` writes: ``survey.json`` (settings), ``records-*.jsonl`` (one
record per prompt) and ``errors-*.jsonl`` (skipped lines).
"""

from __future__ import annotations

from pathlib import Path

from jaxsteer import records
from jaxsteer.config import flatten
from jaxsteer.pages.html import Raw, esc, facts_table, fmt, table
from jaxsteer.pages.svg import bars, histogram
from jaxsteer.recorded import recorded

# Estimators shown as columns, in this order, when a record has them.
COLUMNS = ("subspace_size", "parallel_analysis", "pca_90", "pca_95", "participation_ratio", "mle",
           "twonn", "vaease")


def is_survey(folder: Path) -> bool:
    return (folder / "survey.json").exists() or any(folder.glob("records-*.jsonl"))


def load(folder: Path) -> tuple[dict, list[dict], list[dict]]:
    """(header, records sorted by line, skipped lines sorted by line)."""
    header = records.read_json(folder / "survey.json") if (folder / "survey.json").exists() else {}
    recs = sorted((r for p in sorted(folder.glob("records-*.jsonl"))
                   for r in records.read_records(p)), key=lambda r: r["line"])
    errs = sorted((e for p in sorted(folder.glob("errors-*.jsonl"))
                   for e in records.read_records(p)), key=lambda e: e["line"])
    return header, recs, errs


def _value(rec: dict, key: str) -> float:
    e = (rec.get("estimates") or {}).get(key)
    return float(e["value"]) if isinstance(e, dict) and "value" in e else float("nan")


def _with_ci(entry) -> str:
    if not isinstance(entry, dict) or "value" not in entry:
        return "-"
    ci = entry.get("ci")
    text = fmt(float(entry["value"]))
    return text + (f" [{fmt(float(ci[0]))}, {fmt(float(ci[1]))}]" if ci else "")


# The recorded config's fields the page shows: {label: dotted field}.
FACTS = {"model": "model.name", "pairs": "pairs", "pool": "pool", "steps": "sampler.steps",
         "guidance": "sampler.guidance", "seed": "seed"}


def survey_html(folder: Path) -> tuple[str, str]:
    """(title, body) of a survey folder's page."""
    folder = Path(folder)
    header, recs, errs = load(folder)
    cfg = flatten(recorded(header.get("config", {})))
    title = f"jaxsteer survey: {folder.name}"
    facts = {label: cfg[k] for label, k in FACTS.items() if k in cfg}
    facts |= {"prompts measured": len(recs), "lines skipped": len(errs)}
    parts = [facts_table(facts)]
    if recs:
        cols = [c for c in COLUMNS if any(c in (r.get("estimates") or {}) for r in recs)]
        main = "subspace_size" if "subspace_size" in cols else cols[0]
        ranked = sorted(recs, key=lambda r: -_value(r, main))
        parts.append(f"<h2>Distribution of {esc(main.replace('_', ' '))}</h2>")
        parts.append(histogram([_value(r, main) for r in recs], title=f"{main} over prompts"))
        parts.append("<h2>Prompts ranked by complexity</h2><p>Value [95% interval] per "
                     "estimator (the interval where the survey computed one). Spectrum: "
                     "explained-variance ratios of the leading components, blue above the "
                     "2.5 / D line (red).</p>")
        rows = []
        for rank, r in enumerate(ranked):
            est = r.get("estimates") or {}
            thr = (est.get("subspace_size") or {}).get("threshold")
            thumb = bars(r.get("spectrum_head") or [], width=130, height=34, threshold=thr,
                         axes=False, title=f"spectrum of line {r['line']}")
            rows.append([rank + 1, r["line"], r["prompt"], r.get("token", "")]
                        + [_with_ci(est.get(c)) for c in cols] + [Raw(thumb)])
        parts.append(table(["rank", "line", "prompt", "word"] + [c.replace("_", " ") for c in cols]
                           + ["spectrum"], rows, numeric=[0, 1, *range(4, 4 + len(cols))]))
    else:
        parts.append("<p>No prompt has been measured yet.</p>")
    parts.append("<h2>Skipped lines</h2>")
    if errs:
        parts.append(table(["line", "prompt", "why"],
                           [(e["line"], e.get("prompt", ""), e.get("error", "")) for e in errs],
                           numeric=[0]))
    else:
        parts.append("<p>None.</p>")
    return title, "\n".join(parts)


class SurveyResult(dict):
    """A survey's summary; in a notebook it shows the survey page inline."""

    def _repr_html_(self) -> str:
        return survey_html(Path(self["out"]))[1]
