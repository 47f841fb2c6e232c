"""`jaxsteer survey-merge` and the end of every survey: every process's records merged into
``summary.csv`` and ``summary.png`` (one row per prompt line, the first record of a line kept)."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from jaxsteer import records
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.pages.survey import SurveyResult
from jaxsteer.records import read_records


@dataclasses.dataclass(frozen=True)
class MergeRun:
    out: Path = opt(Path("runs/survey"), "survey folder holding records-*.jsonl from every host",
                    positional=True)


def run_merge(cfg: MergeRun) -> dict:
    if not cfg.out.is_dir():
        raise UserError(f"{cfg.out} is not a folder: give the survey's --out folder")
    if not list(cfg.out.glob("records-*.jsonl")):
        raise UserError(f"{cfg.out} holds no survey records (records-*.jsonl)")
    records.check_out(cfg.out, "survey folder")  # summary.csv and .png go beside the records
    return SurveyResult({"out": str(cfg.out), **merge(cfg.out)})


def skipped_lines(out: Path) -> tuple[int, list[Path]]:
    """(distinct prompt lines logged as errors, the error files) of every process."""
    files = sorted(out.glob("errors-*.jsonl"))
    return len({e["line"] for p in files for e in read_records(p)}), files


def unique_records(out: Path) -> tuple[list[dict], int]:
    """Every process's records in line order, one per prompt line (the first in file order
    wins: two runs on one folder, or a rerun after a merge, may have measured a line twice),
    and the number dropped."""
    seen: dict[int, dict] = {}
    total = 0
    for path in sorted(out.glob("records-*.jsonl")):
        for r in read_records(path):
            total += 1
            seen.setdefault(r["line"], r)
    return [seen[k] for k in sorted(seen)], total - len(seen)


def merge(out: Path) -> dict:
    """Merges every process's records into summary.csv and summary.png; returns the summary."""
    recs, dropped = unique_records(out)
    errors, error_files = skipped_lines(out)
    if dropped:
        print(f"dropped {dropped} duplicate record(s) of prompt lines measured twice "
              "(the first record of each line kept)")
    if errors:
        print(f"{errors} prompt line(s) skipped, listed in "
              f"{', '.join(str(p) for p in error_files)}")
    counts = {"errors": errors, "duplicates_dropped": dropped}
    if not recs:
        return {"records": 0, **counts}
    # the estimates every record has: a survey resumed across versions mixes old records with
    # new ones that carry more estimators (participation_ratio)
    keys = [k for k, v in recs[0]["estimates"].items() if isinstance(v, dict) and "value" in v
            and all(isinstance(r["estimates"].get(k), dict) for r in recs)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["line", "prompt", "token"] + keys)
    for r in recs:
        w.writerow([r["line"], r["prompt"], r["token"]]
                   + [r["estimates"][k]["value"] for k in keys])
    records.atomic_write_text(out / "summary.csv", buf.getvalue())
    main = "subspace_size" if "subspace_size" in keys else keys[0]
    values = np.asarray([float(r["estimates"][main]["value"]) for r in recs])
    order = np.argsort(values)
    _summary_png(out, values, main, [recs[i]["prompt"] for i in order])
    most = [(recs[i]["prompt"], float(values[i])) for i in order[::-1][:5]]
    least = [(recs[i]["prompt"], float(values[i])) for i in order[:5]]
    print(f"{len(recs)} prompts; {main}: median {np.median(values):.1f}, "
          f"range {values.min():.0f}-{values.max():.0f}")
    print("most complex: " + "; ".join(f"{p!r} {v:.0f}" for p, v in most))
    print("least complex: " + "; ".join(f"{p!r} {v:.0f}" for p, v in least))
    return {"records": len(recs), "estimator": main, "median": float(np.median(values)),
            "most_complex": most, "least_complex": least, **counts}


def _summary_png(out: Path, values: np.ndarray, name: str, ordered: list[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(9, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue")
    ax.set_xlabel(name)
    ax.set_ylabel("prompts")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.axis("off")
    lines = ["most complex:"] + [f"  {p[:40]}" for p in ordered[::-1][:5]]
    lines += ["least complex:"] + [f"  {p[:40]}" for p in ordered[:5]]
    ax2.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    records.atomic_write_bytes(out / "summary.png", buf.getvalue())
