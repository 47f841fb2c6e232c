"""A diversify folder as a page section: the samples without and with random steering, on the
same seeds, side by side, with their metrics (`jaxsteer.diversity.run` writes
``diversity.json``, ``samples_without.png`` and ``samples_with.png``)."""

from __future__ import annotations

from pathlib import Path

from jaxsteer import records
from jaxsteer.pages.html import esc, img, png_uri, table

METRICS = (("pairwise_cosine_distance", "mean pairwise cosine distance"), ("vendi", "Vendi score"),
           ("alignment", "alignment (probe reads the caption back)"))


def diversity_html(folder: Path) -> str:
    """The section for one diversify folder."""
    folder = Path(folder)
    result = records.read_json(folder / "diversity.json")
    runs = [name for name in ("without", "with") if isinstance(result.get(name), dict)]
    metrics = [(k, label) for k, label in METRICS if any(k in result[n] for n in runs)]
    rows = [[label] + [result[n].get(k, float("nan")) for n in runs] for k, label in metrics]
    parts = [table(["metric"] + [f"{n} steering" for n in runs], rows,
                   numeric=range(1, len(runs) + 1)),
             "<p class='muted'>Higher distance and Vendi: more diverse. Same seeds in both "
             "rows, so only the random steering differs.</p>"]
    for name in runs:
        png = folder / f"samples_{name}.png"
        if png.exists():
            parts.append(f"<figure>{img(png_uri(png.read_bytes()), f'samples {name} steering')}"
                         f"<figcaption>{esc(name)} steering</figcaption></figure>")
    return "\n".join(parts)
