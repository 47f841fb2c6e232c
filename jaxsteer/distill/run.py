"""`jaxsteer distill-shapes`: a few-step student of a world's model, by distribution matching.

The collapsed generator of the diversity experiment (DESIGN.md section 4) must be collapsed the
way real distilled models are, not by a trick on the noise. This is distribution matching
distillation (DMD, Yin et al. 2024; DMD2, Yin et al. 2024) as DMD2 trains SDXL's 4-step
student, without its GAN term:

- the student is the teacher's UNet run as a K-step sampler (DDIM on the teacher's trailing
  timesteps, one conditional call per step: no guidance), initialised from the teacher, and
  differentiated through all K steps;
- the *real* score is the frozen teacher with classifier-free guidance; the *fake* score is a
  copy of the teacher trained online, by the ordinary denoising loss, on the student's samples;
- the student's sample x0 is noised to a random t and moved along (fake x0 - real x0), divided
  by the sample's mean |x0 - real x0| (DMD's per-sample normalisation), through the surrogate
  ``0.5 * |x0 - stop_gradient(x0 - g)|^2``, whose gradient in x0 is g.

DMD without its regression term is known to lose diversity (DMD's own ablation); DMD2 fights it
with a fake score updated several times per student step (TTUR). Here ``fake_updates = 1`` and
``regression = 0`` by default: the student is meant to collapse, as the distilled models the
method restores diversity to do. ``--dmd.regression`` (the teacher's own sample from the same
noise as target) and ``--dmd.fake-updates 5`` are there to show the opposite.

The teacher is the shapes model (pixel space) or the scenes model (``--teacher scenes``: its
VAE's latent space, where x0 above is a latent, as DMD2 distils SDXL); `worlds` gives each its
training captions, and the world is read off the teacher's tokenizer.

Learning rates, the real score's guidance and the regression weight enter the compiled step as
arrays, so runs that differ only in them share one compiled program (and the persistent cache).
The state is checkpointed atomically, so a killed run resumes where it stopped; the export is a
complete pipeline folder (the teacher's text encoder and tokenizer copied beside the student's
UNet, and a latent teacher's VAE), which `jaxsteer.models.load` reads like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.serialization import msgpack_serialize

from jaxsteer.config import opt, parse, to_dict
from jaxsteer.distill import worlds
from jaxsteer.distill.dmd import DistillState, DMDConfig, StudentConfig, make_distill_step
from jaxsteer.errors import UserError
from jaxsteer.models import load, resolve_attention
from jaxsteer.models.bundled import folder
from jaxsteer.models.schedulers import make_schedule
from jaxsteer.models.shipped import STUDENT_OWN
from jaxsteer.records import (
    atomic_write_bytes,
    check_out,
    publish_folder,
    read_json,
    write_json,
)
from jaxsteer.train_state import load_state, save_state


@dataclasses.dataclass(frozen=True)
class DistillRun:
    """Distils the shapes or scenes model into a few-step student and writes it as a pipeline
    folder."""

    out: Path = opt(Path("shapes-student"), "output pipeline folder", positional=True)
    teacher: str | None = opt(None, "teacher: a bundled model (shapes, scenes) or a pipeline "
                              "folder of either world (default: the --world's bundled model)")
    world: str = opt(worlds.AUTO, "world of the teacher, whose captions the student trains on: "
                     "auto (read off the teacher's tokenizer; shapes without --teacher) | "
                     "shapes | scenes", choices=(worlds.AUTO, *worlds.WORLDS))
    student: StudentConfig = opt(default_factory=StudentConfig)
    dmd: DMDConfig = opt(default_factory=DMDConfig)
    steps: int = opt(2000, "optimiser steps (a resumed run counts from its checkpoint)")
    batch: int = opt(128, "student samples per step")
    seed: int = opt(0, "seed of the captions and every noise draw")
    time_limit_s: float = opt(0.0, "stop (checkpoint and export) after this many seconds of "
                              "training; 0: none")
    checkpoint_every: int = opt(500, "steps between atomic checkpoints of the full state")
    log_every: int = opt(50, "steps between loss read-outs (each one syncs with the device)")
    attention: str = opt("auto", "UNet attention while training: auto (xla on accelerators, "
                         "diffusers' on the CPU) | diffusers | xla",
                         choices=("auto", "diffusers", "xla"))
    unet_dtype: str = opt("float16", "dtype of the exported UNet weights (keeps the package "
                          "small)", choices=("float16", "float32"))
    work_dir: Path | None = opt(None, "checkpoint folder (default: <out>.train next to <out>)")
    progress: bool = opt(True, "show a tqdm progress bar")

    def __post_init__(self):
        for name in ("steps", "batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")

    @property
    def work(self) -> Path:
        return self.work_dir or self.out.with_name(self.out.name + ".train")


def teacher_folder(cfg: DistillRun) -> Path:
    """The teacher's pipeline folder: a bundled world model by name, else the folder given."""
    name = cfg.teacher or ("shapes" if cfg.world == worlds.AUTO else cfg.world)
    if name in worlds.WORLDS:
        return folder(name)
    if not (Path(name) / "model_index.json").exists():
        raise UserError(f"--teacher {name} is not a pipeline folder (no model_index.json) nor "
                        f"a bundled model ({', '.join(worlds.WORLDS)})")
    return Path(name)


def load_teacher(folder: Path, cfg: DistillRun):
    """(bundle, training definition): the teacher in float32, and its definition computing in
    ``cfg.dmd.compute_dtype`` (its own fingerprint, so compiled programs do not mix)."""
    # float32 names the params' dtype: on accelerators "auto" then means XLA's attention,
    # which differentiates everywhere.
    bundle = load(str(folder), dtype="float32", remat_policy="none",
                  attention=resolve_attention(cfg.attention, "float32"))
    m = bundle.model
    if cfg.dmd.compute_dtype != "float32":
        m = dataclasses.replace(m, unet=m.unet.clone(dtype=jnp.dtype(cfg.dmd.compute_dtype)),
                                fingerprint=m.fingerprint + f"|compute={cfg.dmd.compute_dtype}")
    return bundle, m


def _same_run(saved: dict, now: dict) -> bool:
    return all(saved.get(k) == now[k]
               for k in ("teacher", "world", "student", "dmd", "batch", "seed"))


def _restore(work: Path, template: DistillState, cfg: DistillRun
             ) -> tuple[DistillState, list] | None:
    path = work / "state.msgpack"
    if not path.exists():
        return None
    progress = read_json(work / "progress.json")
    if not _same_run(progress.get("config", {}), to_dict(cfg)):
        raise UserError(f"the checkpoint in {work} is from another teacher, world, student, "
                        "objective, batch or seed; use another --work-dir or --out")
    return load_state(path, template), progress.get("log", [])


def _checkpoint(work: Path, state: DistillState, cfg: DistillRun, log: list) -> None:
    save_state(work / "state.msgpack", state)
    write_json(work / "progress.json", {"step": int(state.step), "log": log,
                                        "config": to_dict(cfg)})


@contextlib.contextmanager
def _stop_on_sigterm():
    """Yields an Event set by SIGTERM (`timeout`, a scheduler's kill), so the loop can stop,
    checkpoint and export after the step it is in rather than die with nothing written."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def export_student(teacher: Path, out: Path, unet_params: Any, unet_dtype: str,
                   info: dict) -> Path:
    """A complete pipeline folder: the teacher's files (text encoder, tokenizer and, for a
    latent model, VAE) with the student's UNet weights, its timesteps in the scheduler config
    and ``training.json`` saying how it was made; replaces ``out`` at the end."""
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in sorted(p.name for p in teacher.iterdir() if p.is_dir()):
        if sub not in STUDENT_OWN:
            shutil.copytree(teacher / sub, tmp / sub)
    (tmp / "unet").mkdir(parents=True)
    shutil.copy(teacher / "unet" / "config.json", tmp / "unet" / "config.json")
    shutil.copy(teacher / "model_index.json", tmp / "model_index.json")
    weights = jax.tree.map(lambda x: np.asarray(x, jnp.dtype(unet_dtype)),
                           jax.device_get(unet_params))  # tree.map sorts keys, as export does
    atomic_write_bytes(tmp / "unet" / "diffusion_flax_model.msgpack", msgpack_serialize(weights))
    sched = read_json(teacher / "scheduler" / "scheduler_config.json")
    write_json(tmp / "scheduler" / "scheduler_config.json",
               {**sched, "timesteps": info["sampler"]["timesteps"]})
    write_json(tmp / "training.json", info)
    return publish_folder(tmp, out)


def run(cfg: DistillRun) -> dict:
    """Distils (or resumes) and exports the student to ``cfg.out``.

    Returns:
      {"folder", "world", "step", "log": [{"step", "dmd", "gap", "fake", ...}, ...], "seconds",
      "steps_per_s", "sampler"}; "gap" is mean |fake x0 - real x0| / mean |x0 - real x0|, how
      far the two scores disagree on the student's samples, "fake" the fake score's loss.
    """
    from tqdm.auto import tqdm

    check_out(cfg.out, "out")
    work = check_out(cfg.work, "--work-dir")
    teacher_dir = teacher_folder(cfg)
    world = worlds.resolve(cfg.world, teacher_dir)
    bundle, model = load_teacher(teacher_dir, cfg)
    work.mkdir(parents=True, exist_ok=True)
    step_fn, init_fn = make_distill_step(model, cfg.student, cfg.dmd.static())
    teacher_unet, text = bundle.params["unet"], bundle.params["text_encoder"]
    copy = lambda tree: jax.tree.map(jnp.array, tree)  # noqa: E731 (own buffers: donated)
    state = init_fn(copy(teacher_unet), copy(teacher_unet))
    restored = _restore(work, state, cfg)
    state, log = restored if restored is not None else (state, [])
    uncond = jax.tree.map(lambda a: a[0], bundle.model.encode_text(
        bundle.params, bundle.model.tokenize("", allow_empty=True).ids_et[None]))
    captions = worlds.caption_stream(world, teacher_dir / "tokenizer", cfg.batch, cfg.seed)
    hyper = cfg.dmd.hyper()
    key = jax.random.fold_in(jax.random.key(cfg.seed), 2)
    start = step = int(state.step)
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=start, disable=not cfg.progress, desc=f"distill {world}")
    with _stop_on_sigterm() as stop:
        while step < cfg.steps:
            state, metrics = step_fn(state, teacher_unet, text, captions(step), uncond,
                                     hyper, jax.random.fold_in(key, step))
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                m = {k: float(v) for k, v in metrics.items()}
                log.append({"step": step, **m})
                bar.set_postfix(gap=f"{m['gap']:.3f}", fake=f"{m['fake']:.4f}")
                if not cfg.progress:
                    print(f"step {step} " + " ".join(f"{k} {v:.4g}" for k, v in m.items())
                          + f" {time.time() - t0:.0f} s", flush=True)
            out_of_time = (cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s
                           ) or stop.is_set()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                _checkpoint(work, state, cfg, log)
            if out_of_time:
                break
    bar.close()
    seconds = time.time() - t0
    ts = make_schedule(bundle.model.schedule, cfg.student.steps, cfg.student.scheduler).t_s
    sampler = {**cfg.student.sampler(), "timesteps": [int(t) for t in np.asarray(ts)]}
    info = {"distillation": "DMD (distribution matching), jaxsteer.distill.run",
            "teacher": str(teacher_dir), "world": world, "step": step, "sampler": sampler,
            "log": log, "config": to_dict(cfg)}
    export_student(teacher_dir, cfg.out, state.student, cfg.unet_dtype, info)
    return {"folder": str(cfg.out), "world": world, "step": step, "log": log, "seconds": seconds,
            "steps_per_s": (step - start) / max(seconds, 1e-9), "sampler": sampler}


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.distill.run OUT [--flags]``: the CLI subcommand without the CLI."""
    cfg = parse(DistillRun, sys.argv[1:] if argv is None else argv,
                "jaxsteer distill-shapes", DistillRun.__doc__ or "")
    result = run(cfg)
    print(f"distilled {result['step']} steps in {result['seconds']:.0f} s; student in "
          f"{result['folder']}")


if __name__ == "__main__":
    main()
