"""How collapsed a shapes-world generator is, read off its images by the probe.

For one caption, the **spread** of each factor the caption leaves free (standard deviation of x,
y, size; circular standard deviation of hue in degrees; entropy of the type histogram over
log 3: the ground-truth benchmark's `spread`), over the images the probe can read (a shape on a
dark background), and the **fidelity**: `evaluate.score`'s share of images whose every
caption-fixed factor reads back inside its band. A generator's collapse against a reference is
the **spread ratio**: the geometric mean over (prompt, free continuous factor) of its spread over
the reference's; type is reported but left out of the ratio (its entropy can be 0).

`compare` renders several generators (a sampler preset of a model, or diversity distillation's
handoff from a base model) on the same seeds and tabulates all of it.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from jaxsteer import records, sharding
from jaxsteer.config import opt, parse
from jaxsteer.diversity_distillation import distilled_diversity
from jaxsteer.errors import UserError
from jaxsteer.models import load
from jaxsteer.models.base import ModelBundle
from jaxsteer.models.bundled import PRESETS
from jaxsteer.records import read_json
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig
from jaxsteer.shapes.captions import CONTINUOUS, FACTORS, spec
from jaxsteer.shapes.evaluate import score
from jaxsteer.shapes.probe import measure
from jaxsteer.steer import render_batches, steered_cond

# Captions with 2-4 free factors, none held out: what `distill-shapes`' collapse is read on.
PROMPTS = ("a red circle", "a large blue square", "a circle", "a green triangle on the left")
USABLE_BACKGROUND = 0.3   # the benchmark's: brightest background channel the probe is trusted on


def free_factors(prompt: str) -> tuple[str, ...]:
    fixed = spec(prompt).fixed
    return tuple(f for f in FACTORS if f not in fixed)


def factor_spreads(prompt: str, images: np.ndarray,
                   usable_background: float = USABLE_BACKGROUND) -> dict:
    """{"spread": {free factor: spread or None}, "fidelity", "usable"} of one caption's images
    [n, H, W, 3] in [-1, 1]."""
    # lazy: a cycle; the groundtruth package's __init__ imports its sections, which import
    # jaxsteer.diversity, which imports this module
    from jaxsteer.benchmarks.groundtruth.stats import spread
    m = measure(images)
    ok = m["valid"] & (m["background"] <= usable_background)
    return {"spread": {f: spread(f, m[f][ok]) for f in free_factors(prompt)},
            "fidelity": score([prompt] * len(images), images)["fixed"],
            "usable": float(ok.mean())}


def spread_ratio(entries: list[dict], references: list[dict]) -> float | None:
    """Geometric mean over every (entry, free continuous factor) of spread / reference spread
    (pairs where either is undefined are skipped; None when none is left)."""
    ratios = [max(e["spread"][f], 1e-6) / max(r["spread"][f], 1e-6)
              for e, r in zip(entries, references, strict=True) for f in e["spread"]
              if f in CONTINUOUS and e["spread"][f] is not None and r["spread"][f] is not None]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else None


@dataclasses.dataclass(frozen=True, eq=False)
class Generator:
    """A model under a sampler; with ``base``, diversity distillation: ``base`` (a model with
    ``base_guidance``) takes the first ``base_steps`` steps of the sampler's schedule."""

    bundle: ModelBundle
    sampler: SamplerConfig
    base: ModelBundle | None = None
    base_steps: int = 0
    base_guidance: float = 3.0

    def calls(self) -> dict[str, int]:
        """Denoiser calls per image: {"base", "student"} (a CFG step is two calls)."""
        per = 2 if self.sampler.use_cfg else 1
        base_per = 2 if self.base_guidance > 1.0 else 1
        return {"base": self.base_steps * base_per,
                "student": (self.sampler.steps - self.base_steps) * per}

    def render(self, prompt: str, keys: jax.Array, mesh, batch: int) -> np.ndarray:
        if self.base is not None:
            return distilled_diversity(self.bundle, self.sampler, self.base, self.base_guidance,
                                       prompt, keys, self.base_steps, mesh, batch)
        cond, uncond = encode_prompt(self.bundle, prompt, self.sampler.use_cfg)
        return render_batches(self.bundle, self.sampler, mesh,
                              steered_cond(cond, (), None, n=keys.shape[0]), uncond, keys, batch)


def compare(generators: dict[str, Generator], prompts: tuple[str, ...], n: int, seed: int,
            reference: str, mesh, batch: int = 64) -> dict:
    """Every generator on the same ``n`` seeds per prompt, scored against ``reference``.

    Returns:
      {"prompts": {prompt: {name: factor_spreads(...)}}, "summary": {name: {"spread_ratio"
      (vs reference), "fidelity" (mean over prompts), "calls"}}, "n", "seed", "reference"}.
    """
    per_prompt: dict[str, dict] = {}
    for i, prompt in enumerate(prompts):
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), i), n)
        per_prompt[prompt] = {name: factor_spreads(prompt, g.render(prompt, keys, mesh, batch))
                              for name, g in generators.items()}
    summary = {}
    for name, g in generators.items():
        mine = [per_prompt[p][name] for p in prompts]
        refs = [per_prompt[p][reference] for p in prompts]
        fid = [e["fidelity"] for e in mine if e["fidelity"] is not None]
        summary[name] = {"spread_ratio": spread_ratio(mine, refs),
                         "fidelity": float(np.mean(fid)) if fid else None, "calls": g.calls()}
    return {"prompts": per_prompt, "summary": summary, "n": n, "seed": seed,
            "reference": reference}


def choose(summary: dict[str, dict], candidates: tuple[str, ...], fidelity: float = 0.9
           ) -> str:
    """The candidate that collapsed most (smallest spread ratio) among those whose fidelity is
    at least ``fidelity``; without any, the most faithful. Fixed before any run is seen."""
    ok = [c for c in candidates if (summary[c]["fidelity"] or 0.0) >= fidelity
          and summary[c]["spread_ratio"] is not None]
    if ok:
        return min(ok, key=lambda c: summary[c]["spread_ratio"])
    return max(candidates, key=lambda c: summary[c]["fidelity"] or 0.0)


@dataclasses.dataclass(frozen=True)
class CollapseRun:
    """Collapse of distilled students against their teacher, with diversity distillation."""

    students: tuple[Path, ...] = opt((), "student pipeline folders (`jaxsteer distill-shapes`)")
    teacher: str = opt("shapes", "the teacher: a bundled model or pipeline folder")
    prompts: tuple[str, ...] = opt(PROMPTS, "captions to read the collapse on")
    n: int = opt(256, "seeds per prompt (the same for every generator)")
    baseline_steps: int = opt(1, "teacher steps of the diversity distillation rows (0: none)")
    min_fidelity: float = opt(0.9, "fidelity the chosen student must keep")
    seed: int = opt(0, "seed of the samples")
    batch: int = opt(256, "images per compiled call")
    out: Path = opt(Path("collapse.json"), "the JSON of every number")

    def __post_init__(self):
        if not self.students:
            raise UserError("--students: give at least one student folder")
        for p in self.prompts:
            spec(p)


def run(cfg: CollapseRun) -> dict:
    """Teacher (its preset), teacher under each student's sampler (the student's start), each
    student, and each student with the teacher's first ``baseline_steps`` steps, on the same
    seeds; writes ``cfg.out`` with the choice of `choose` and prints the summary."""
    mesh = sharding.local_mesh()
    teacher = load(cfg.teacher)
    preset = PRESETS.get(cfg.teacher, PRESETS["shapes"])
    gens = {"teacher": Generator(teacher, SamplerConfig(**preset))}
    names = []
    for folder in cfg.students:
        sampler = SamplerConfig(**{k: v for k, v in read_json(
            Path(folder) / "training.json")["sampler"].items() if k != "timesteps"})
        student, name = load(str(folder)), Path(folder).name
        names.append(name)
        gens[f"teacher@{name}"] = Generator(teacher, sampler)
        gens[name] = Generator(student, sampler)
        if 0 < cfg.baseline_steps < sampler.steps:
            gens[f"{name}+dd{cfg.baseline_steps}"] = Generator(
                student, sampler, teacher, cfg.baseline_steps, float(preset["guidance"]))
    result = compare(gens, cfg.prompts, cfg.n, cfg.seed, "teacher", mesh, cfg.batch)
    result["chosen"] = choose(result["summary"], tuple(names), cfg.min_fidelity)
    result["rule"] = (f"smallest spread ratio among students with fidelity >= "
                      f"{cfg.min_fidelity}, else the most faithful")
    records.write_json(cfg.out, result)
    for name, s in result["summary"].items():
        ratio = "-" if s["spread_ratio"] is None else f"{s['spread_ratio']:.3f}"
        fid = "-" if s["fidelity"] is None else f"{s['fidelity']:.3f}"
        print(f"{name:24} spread x teacher {ratio:>7}  fidelity {fid:>6}  calls {s['calls']}")
    print(f"chosen: {result['chosen']}")
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.distill.collapse --students A,B [--flags]``."""
    run(parse(CollapseRun, sys.argv[1:] if argv is None else argv,
              "python -m jaxsteer.distill.collapse", CollapseRun.__doc__ or ""))


if __name__ == "__main__":
    main()
