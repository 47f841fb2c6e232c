"""The directions of a steer folder: what each one does, measured, and a strength scrubber.

Per direction: a card with its number (0-based, as ``--indices`` and the terminal count), whether
it is significant, its measured effects (`jaxsteer.effects`), a heat map of where the image
changes, and a slider (``<input type=range>``: arrow keys move it) that scrubs the pre-rendered
images from -alpha to +alpha for every seed, beside the unsteered image. Then the first two
directions together, one slider each. Reads ``steer.json`` and ``steer.safetensors``, as
`jaxsteer.steer.save_outputs` writes them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from jaxsteer import records
from jaxsteer.effects import summary
from jaxsteer.pages.html import Raw, array_png, esc, fmt, img, png_uri, signed, table

# Moves every image of a group to the strengths its sliders show; frames[seed][i] (one
# direction) or frames[seed][i][j] (two). Marks sliders it has wired, so a notebook that
# shows several outputs wires each once.
SCRIPT = """(function(){
document.querySelectorAll('input.scrub:not([data-ready])').forEach(function(s){
  s.setAttribute('data-ready','1');
  var g=s.dataset.group, frames=JSON.parse(document.getElementById(g+'-frames').textContent),
      labels=JSON.parse(s.dataset.labels);
  s.addEventListener('input',function(){
    var sl=document.querySelectorAll('input.scrub[data-group="'+g+'"]');
    var idx=[].map.call(sl,function(x){return +x.value;});
    document.querySelectorAll('img.frame[data-group="'+g+'"]').forEach(function(im){
      var f=frames[+im.dataset.seed]; idx.forEach(function(i){f=f[i];}); im.src=f;});
    document.getElementById(s.id+'-out').textContent=labels[+s.value];
    s.setAttribute('aria-valuetext','alpha '+labels[+s.value]);
  });
});})();"""


def heat_png(heat_hw: np.ndarray) -> bytes:
    """A heat map (black, red, yellow, white as the change grows), scaled to its maximum."""
    t = np.asarray(heat_hw, np.float64)
    t = t / t.max() if t.max() > 0 else t
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    return array_png((rgb * 255).round().astype(np.uint8))


def _width(side: int) -> int:
    """Display width: small images enlarged (crisp), large ones at most 256 px."""
    return int(min(max(side, 128 if side < 64 else side), 256))


def _uri(image: np.ndarray) -> str:
    return png_uri(array_png(image))


def _slider(group: str, name: str, labels: list[str], start: int, text: str) -> str:
    sid = f"{group}-{name}"
    return (f'<label for="{sid}">{esc(text)}</label> '
            f'<input type="range" class="scrub" id="{sid}" data-group="{group}" min="0" '
            f'max="{len(labels) - 1}" step="1" value="{start}" '
            f"data-labels='{esc(json.dumps(labels))}' aria-valuetext=\"alpha {labels[start]}\"> "
            f'<output id="{sid}-out" for="{sid}">{esc(labels[start])}</output>')


def _frames(group: str, seeds: list[int], unsteered: np.ndarray, frames_nested,
            start_uri: list[str], caption: str) -> str:
    side = _width(unsteered.shape[1])
    figs = []
    for n, s in enumerate(seeds):
        plain = img(_uri(unsteered[n]), f"seed {s} unsteered", side, "px")
        steered = img(start_uri[n], f"seed {s} {caption}", side, "px frame",
                      f' data-group="{group}" data-seed="{n}"')
        figs.append(f"<figure>{plain}<figcaption>seed {s}, unsteered</figcaption></figure>"
                    f"<figure>{steered}<figcaption>seed {s}, {esc(caption)}</figcaption>"
                    "</figure>")
    data = json.dumps(frames_nested).replace("</", "<\\/")
    return (f'<div class="frames">{"".join(figs)}</div>'
            f'<script type="application/json" id="{group}-frames">{data}</script>')


def _effects_table(eff: dict) -> str:
    rows = [(k, signed(v)) for k, v in eff["per_unit"].items()]
    rows.append(("mean |pixel change| (0-1 scale, over strengths)", fmt(eff["mean_abs_change"])))
    probe = eff.get("probe") or {}
    names = {"size": "size (fraction of the side)", "x": "x position (fraction)",
             "y": "y position (fraction, down)", "hue_deg": "hue (degrees)"}
    for k, label in names.items():
        if k in probe:
            rows.append((f"probe: {label}", signed(probe[k])))
    if "type_changed" in probe:
        rows.append(("probe: shape type changed", f"{100 * probe['type_changed']:.0f}% of images"))
    return table(["change per unit strength", ""], rows, numeric=[1])


def _badge(i: int, significant: int | None) -> str:
    if significant is None:
        return ""
    if i < significant:
        return '<span class="badge sig">significant</span>'
    return '<span class="badge nosig">not significant</span>'


def directions_html(folder: Path) -> str:
    """The section of a page for one steer folder (HTML fragment with its script)."""
    meta = records.read_json(Path(folder) / "steer.json")
    arrays = records.load_arrays(Path(folder) / "steer.safetensors")
    alphas = meta["alphas"]
    labels = [signed(a, 3) if a else "0" for a in alphas]
    zero = int(np.argmin(np.abs(alphas)))
    seeds, sig = meta["seeds"], meta.get("significant")
    uid = "s" + uuid.uuid4().hex[:8]
    unit = ("raw strength" if meta.get("absolute") else
            f"multiples of the word's embedding norm ({fmt(meta.get('scale'))})")
    rule = ("significant: explained-variance ratio above 2.5 / D (the authors' rule); "
            f"{sig} direction(s) pass" if sig is not None else "SAE directions: no "
            "significance test")
    parts = [f"<p>Prompt <b>{esc(meta.get('prompt'))}</b>, word <b>{esc(meta.get('token'))}"
             f"</b>, {esc(meta.get('method'))} directions, numbered from 0. Strength alpha: "
             f"{esc(unit)}. {esc(rule)}. Move a slider (or focus it and press the arrow keys) "
             "to scrub the strength.</p>"]
    images, heat = arrays["images"], arrays["heat"]
    for n, i in enumerate(meta["indices"]):
        eff = meta["effects"][str(i)]
        frames = [[_uri(images[n, s, a]) for a in range(len(alphas))] for s in range(len(seeds))]
        group = f"{uid}-d{i}"
        heat_img = img(png_uri(heat_png(heat[n])), f"direction {i} heat map",
                       _width(heat.shape[1]), "px")
        parts.append(
            f'<div class="card" id="direction-{i}"><h3>direction {i}{_badge(i, sig)}</h3>'
            f'<div class="frames"><div>{_effects_table(eff)}</div><figure>{heat_img}'
            f"<figcaption>where it changes (max {fmt(float(heat[n].max()))})</figcaption>"
            f"</figure></div><p>{_slider(group, 'a', labels, zero, f'direction {i}, alpha')}"
            "</p>" + _frames(group, seeds, arrays["unsteered"], frames,
                             [f[zero] for f in frames], "steered") + "</div>")
    if meta.get("pair") and "pair" in arrays:
        i, j = meta["pair"]
        pair = arrays["pair"]
        frames = [[[_uri(pair[s, a, b]) for b in range(len(alphas))] for a in range(len(alphas))]
                  for s in range(len(seeds))]
        group = f"{uid}-pair"
        parts.append(
            f'<div class="card" id="composition"><h3>composition: direction {i} and direction '
            f"{j}</h3><p>{_slider(group, 'a', labels, zero, f'direction {i}, alpha')}<br>"
            f"{_slider(group, 'b', labels, zero, f'direction {j}, alpha')}</p>"
            + _frames(group, seeds, arrays["unsteered"], frames,
                      [f[zero][zero] for f in frames], "both") + "</div>")
    return "\n".join(parts) + f"<script>{SCRIPT}</script>"


def effects_rows(meta: dict) -> list[tuple]:
    """(direction, significant, one-line effects) rows: the terminal's lines as a table."""
    sig = meta.get("significant")
    return [(i, "-" if sig is None else ("yes" if i < sig else "no"),
             Raw(esc(summary(meta["effects"][str(i)])))) for i in meta["indices"]]
