"""Models that need no download: the shapes and scenes models shipped in the package, and `tiny` /
`tiny-xl`, tiny random SD / SDXL pipelines the code builds itself (for smoke tests and demos of
the plumbing)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from jaxsteer import models
from jaxsteer.errors import UserError
from jaxsteer.models import flux, sd, sdxl, tiny, tiny_flux
from jaxsteer.models.base import ModelBundle
from jaxsteer.models.nn.load import load_unet
from jaxsteer.models.shipped import verify as verify_shipped
from jaxsteer.models.weights import dtype_from_name
from jaxsteer.scenes import assets as scenes_assets
from jaxsteer.shapes.assets import verify

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NAMES = ("shapes", "shapes-turbo", "shapes-student", "scenes", "scenes-student", "tiny",
         "tiny-xl", "tiny-flux")
# Distilled students shipped as their UNet only: student -> its teacher, whose text encoder,
# tokenizer and (scenes) VAE it shares (and whose sampler diversity distillation's first steps
# use). Each student's checksums are `jaxsteer.<its world>.student_checksums`, written when it
# is installed (`python3 -m jaxsteer.<world>.assets install-student`); none: not installed.
STUDENTS = {"shapes-student": "shapes", "scenes-student": "scenes"}
# Built on first use into the cache folder: name -> (folder name, module, its builder's name).
_BUILT = {"tiny": ("tiny-sd", tiny, "build_tiny_sd"),
          "tiny-xl": ("tiny-sdxl", tiny, "build_tiny_sdxl"),
          "tiny-flux": ("tiny-flux", tiny_flux, "build_tiny_flux")}

# Sampler settings each bundled model is meant to run with (SamplerConfig fields). The CLI
# applies them to the flags a user leaves out. `shapes-turbo` is the collapsed generator of the
# diversity experiment (DESIGN.md section 4): the shapes weights in 4 steps with 90% of every
# sample's starting noise shared. Measured first on this world, neither 1-2 step sampling nor
# high guidance collapses cleanly: one step gives a blur whose colour the probe misreads (fixed
# factors right on 8%), two steps at guidance 3-10 give malformed shapes (21-61%), guidance does
# not narrow factors that the unconditional model spreads as widely. The shared noise does: "a
# red circle" keeps its fixed factors on 97% of samples while the central 95% of x shrinks from
# 74% of the range to 9% (see jaxsteer/shapes/groundtruth.py for the benchmark's numbers).
# `shapes-student` is the genuinely distilled collapsed generator (`jaxsteer distill-shapes`,
# DMD): its sampler is the one it was distilled for, as its training.json records; until one is
# installed, jaxsteer.distill.dmd.StudentConfig's defaults (4 DDIM steps, no guidance).
# `scenes` (`jaxsteer train-scenes`, 64 x 64 latent): DDIM, 25 steps, guidance 3, the sampler
# its probe quality was measured with (results/2026-12-02-s9/scenes_quality.md: every fixed
# factor right on 97-100% of samples); its training run's own evaluation used 50 steps.
# `scenes-student` is its distilled student (`jaxsteer distill-shapes --teacher scenes`), as
# `shapes-student` is the shapes model's.


def _student_sampler(name: str) -> dict:
    record = ASSETS / name / "training.json"
    sampler = (json.loads(record.read_text())["sampler"] if record.exists() else
               {"steps": 4, "guidance": 0.0, "scheduler": "ddim"})
    return {k: sampler[k] for k in ("steps", "guidance", "scheduler")}


PRESETS: dict[str, dict] = {
    "shapes": {"steps": 20, "guidance": 3.0, "scheduler": "ddim"},
    "shapes-turbo": {"steps": 4, "guidance": 3.0, "scheduler": "ddim", "shared_noise": 0.9},
    "shapes-student": _student_sampler("shapes-student"),
    "scenes": {"steps": 25, "guidance": 3.0, "scheduler": "ddim"},
    "scenes-student": _student_sampler("scenes-student"),
}

# The factor read-out (`jaxsteer.effects.PROBES`) of the world each bundled model draws.
PROBES: dict[str, str] = {"shapes": "shapes", "shapes-turbo": "shapes",
                          "shapes-student": "shapes", "scenes": "scenes",
                          "scenes-student": "scenes"}


def cache_dir() -> Path:
    return Path(os.environ.get("JAXSTEER_CACHE", Path.home() / ".cache" / "jaxsteer"))


def folder(name: str) -> Path:
    """The local pipeline folder of a bundled model, building `tiny` on first use."""
    if name in _BUILT:
        sub, module, builder = _BUILT[name]
        path = cache_dir() / sub
        if not (path / "model_index.json").exists():
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            getattr(module, builder)(tmp)
            tmp.rename(path) if not path.exists() else None
        return path
    if name in STUDENTS:
        return _student_folder(name)
    path = ASSETS / ("shapes" if name == "shapes-turbo" else name)  # same weights
    if not (path / "model_index.json").exists():
        raise UserError(f"the bundled model {name!r} is not in this installation ({path})")
    if name in ("shapes", "shapes-turbo"):
        verify(path)  # shipped weights must match their recorded checksums
    elif name == "scenes":
        scenes_assets.verify(path)
    return path


def student_checksums(name: str) -> dict[str, str]:
    """The recorded checksums of a bundled student (in its world's package); {} until one is
    installed."""
    try:
        return importlib.import_module(f"jaxsteer.{PROBES[name]}.student_checksums").SHA256
    except ImportError:
        return {}


def installed(name: str) -> bool:
    """Whether the bundled student ``name`` is in this installation (files and checksums)."""
    return (ASSETS / name / "model_index.json").exists() and bool(student_checksums(name))


def installed_student(model: str) -> str | None:
    """The bundled student of ``model`` when one is installed, else None."""
    return next((s for s, t in STUDENTS.items() if t == model and installed(s)), None)


def _student_folder(name: str) -> Path:
    if not installed(name):
        world = PROBES[name]
        env = "" if world == "shapes" else f"WORLD={world} "
        flag = "" if world == "shapes" else f" --teacher {world}"
        raise UserError(f"the distilled student {name!r} is not in this installation yet: make "
                        f"it with `{env}bash scripts/gpu_distill.sh` on a GPU (or `jaxsteer "
                        f"distill-shapes OUT{flag}`), then `python3 -m jaxsteer.{world}.assets "
                        "install-student OUT`")
    return verify_shipped(ASSETS / name, student_checksums(name), f"the bundled {name} model")


def load(name: str, **kw) -> ModelBundle:
    if name in STUDENTS:
        return _load_student(name, **kw)
    family = {"tiny-xl": sdxl, "tiny-flux": flux}.get(name, sd)
    bundle = family.load(str(folder(name)), **kw)
    bundle.info.update(model=name)
    return bundle


def _load_student(name: str, **kw) -> ModelBundle:
    """The teacher's pipeline with the student's UNet weights (same architecture, so the same
    definition and compiled programs)."""
    path = _student_folder(name)
    teacher = sd.load(str(folder(STUDENTS[name])), **kw)
    unet, params = load_unet(path / "unet", dtype_from_name(kw.get("dtype", "float32")))
    if unet.config != teacher.model.unet.config:
        raise UserError(f"the bundled {name} UNet in {path} is not its teacher's architecture; "
                        "reinstall it")
    info = {**teacher.info, "model": name, "folder": str(path), "teacher": STUDENTS[name]}
    return ModelBundle(teacher.model, {**teacher.params, "unet": params}, info)


def preset_bundle(preset: str, model: str, bundle: ModelBundle) -> ModelBundle:
    """The weights a sampler preset runs on beside ``model`` (loaded as ``bundle``): a bundled
    student's own when ``model`` is its teacher, else ``bundle`` (`shapes-turbo`: the same)."""
    # dtype and devices as ``bundle`` was loaded
    return models.load(preset) if STUDENTS.get(preset) == model else bundle
