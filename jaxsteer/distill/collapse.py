"""How collapsed a generator of a synthetic world is, read off its images by the world's probe.

For one caption, the **spread** of each factor the caption leaves free (standard deviation of x,
y, size; circular standard deviation of hue in degrees; normalised entropy of a categorical
factor's histogram: type, and in the scenes world texture, background, dot: the ground-truth
benchmark's `spread`), over the images the probe can read (a shape on a background without too
much colour wash), and the **fidelity**: the world's share of images whose every caption-fixed
factor reads back right (the benchmark's). A generator's collapse against a reference is the
**spread ratio**: the geometric mean over (prompt, free continuous factor) of its spread over
the reference's; categorical factors are reported but left out of the ratio (their entropy can
be 0). What differs between the worlds is the benchmark's `worlds.World` (probe, grammar,
fidelity); the prompts are each world's own (`PROMPTS`).

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
from jaxsteer.distill import worlds as distill_worlds
from jaxsteer.diversity_distillation import distilled_diversity
from jaxsteer.errors import UserError
from jaxsteer.models import load
from jaxsteer.models.base import ModelBundle
from jaxsteer.models.bundled import PRESETS, PROBES
from jaxsteer.records import read_json
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig
from jaxsteer.shapes.captions import CONTINUOUS  # the scenes world's too
from jaxsteer.steer import render_batches, steered_cond

# What `distill-shapes`' collapse is read on, per world: captions with free factors of the
# benchmark's section counts, none held out (shapes: 2-4 free; scenes: 3-5, the tune split's
# first recovery and diversity prompts, `groundtruth.split.section_prompts("tune", 2, 2)`).
PROMPTS = {
    "shapes": ("a red circle", "a large blue square", "a circle", "a green triangle on the left"),
    "scenes": ("a picture of a small coloured solid shape at the bottom right and a dot",
               "this is a simple drawing of a cyan painted square on the right on something",
               "this is a picture of a sized striped circle at the top right on something",
               "a picture of a sized magenta circle at the bottom right on grey and any dot"),
}
USABLE_BACKGROUND = 0.3   # the benchmark's: brightest background channel the probe is trusted on


def _world(name: str):
    # lazy: a cycle; the groundtruth package's __init__ imports its sections, which import
    # jaxsteer.diversity, which imports this module
    from jaxsteer.benchmarks.groundtruth import worlds
    return worlds.get(name)


def factor_spreads(prompt: str, images: np.ndarray,
                   usable_background: float = USABLE_BACKGROUND, world: str = "shapes") -> dict:
    """{"spread": {free factor: spread or None}, "fidelity", "usable"} of one caption's images
    [n, H, W, 3] in [-1, 1], read by ``world``'s probe."""
    from jaxsteer.benchmarks.groundtruth.stats import spread  # lazy: as `_world`
    w = _world(world)
    m = w.measure(images)
    ok = m["valid"] & (m[w.wash] <= usable_background)
    return {"spread": {f: spread(f, m[f][ok]) for f in w.free(prompt)},
            "fidelity": w.fidelity(prompt, images), "usable": float(ok.mean())}


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
            reference: str, mesh, batch: int = 64, world: str = "shapes") -> dict:
    """Every generator on the same ``n`` seeds per prompt, scored against ``reference``.

    Returns:
      {"prompts": {prompt: {name: factor_spreads(...)}}, "summary": {name: {"spread_ratio"
      (vs reference), "fidelity" (mean over prompts), "calls"}}, "n", "seed", "reference",
      "world"}.
    """
    per_prompt: dict[str, dict] = {}
    for i, prompt in enumerate(prompts):
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), i), n)
        per_prompt[prompt] = {name: factor_spreads(prompt, g.render(prompt, keys, mesh, batch),
                                                   world=world)
                              for name, g in generators.items()}
    summary = {}
    for name, g in generators.items():
        mine = [per_prompt[p][name] for p in prompts]
        refs = [per_prompt[p][reference] for p in prompts]
        fid = [e["fidelity"] for e in mine if e["fidelity"] is not None]
        summary[name] = {"spread_ratio": spread_ratio(mine, refs),
                         "fidelity": float(np.mean(fid)) if fid else None, "calls": g.calls()}
    return {"prompts": per_prompt, "summary": summary, "n": n, "seed": seed,
            "reference": reference, "world": world}


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
    teacher: str = opt("shapes", "the teacher: a bundled model (shapes, scenes) or pipeline "
                       "folder of either world")
    world: str = opt(distill_worlds.AUTO, "world of the teacher, whose probe reads the images: "
                     "auto (the bundled model's, or read off the folder's tokenizer) | shapes | "
                     "scenes", choices=(distill_worlds.AUTO, *distill_worlds.WORLDS))
    prompts: tuple[str, ...] | None = opt(None, "captions to read the collapse on (default: "
                                          "the world's PROMPTS)")
    n: int = opt(256, "seeds per prompt (the same for every generator)")
    baseline_steps: int = opt(1, "teacher steps of the diversity distillation rows (0: none)")
    min_fidelity: float = opt(0.9, "fidelity the chosen student must keep")
    seed: int = opt(0, "seed of the samples")
    batch: int = opt(256, "images per compiled call")
    out: Path = opt(Path("collapse.json"), "the JSON of every number")

    def __post_init__(self):
        if not self.students:
            raise UserError("--students: give at least one student folder")

    def resolved_world(self) -> str:
        """The world: given, the bundled teacher's, or the teacher folder's (a UserError when
        it is neither world's, or not the one given)."""
        if self.teacher in PROBES:
            bundled = PROBES[self.teacher]
            if self.world not in (distill_worlds.AUTO, bundled):
                raise UserError(f"--world {self.world}: the teacher {self.teacher} is a bundled "
                                f"{bundled} model")
            return bundled
        folder = Path(self.teacher)
        if not (folder / "model_index.json").exists():
            raise UserError(f"--teacher {self.teacher} is not a bundled model nor a pipeline "
                            "folder (no model_index.json)")
        return distill_worlds.resolve(self.world, folder)


def run(cfg: CollapseRun) -> dict:
    """Teacher (its preset), teacher under each student's sampler (the student's start), each
    student, and each student with the teacher's first ``baseline_steps`` steps, on the same
    seeds; writes ``cfg.out`` with the choice of `choose` and prints the summary."""
    world = cfg.resolved_world()
    prompts = cfg.prompts or PROMPTS[world]
    for p in prompts:
        _world(world).spec(p)   # outside the grammar: fails before any load
    for folder in cfg.students:
        if not (Path(folder) / "training.json").exists():
            raise UserError(f"--students: {folder} is not a student folder from `jaxsteer "
                            "distill-shapes` (no training.json)")
    mesh = sharding.local_mesh()
    teacher = load(cfg.teacher)
    preset = PRESETS.get(cfg.teacher, PRESETS[world])
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
    result = compare(gens, prompts, cfg.n, cfg.seed, "teacher", mesh, cfg.batch, world)
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
    """``python -m jaxsteer.distill.collapse --students A,B [--flags]``; bad input is one line
    and exit 1, not a traceback."""
    try:
        run(parse(CollapseRun, sys.argv[1:] if argv is None else argv,
                  "python -m jaxsteer.distill.collapse", CollapseRun.__doc__ or ""))
    except UserError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
