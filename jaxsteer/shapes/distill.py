"""`jaxsteer distill-shapes`: a few-step student of the shapes model, by distribution matching.

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

Learning rates, the real score's guidance and the regression weight enter the compiled step as
arrays, so runs that differ only in them share one compiled program (and the persistent cache).
The state is checkpointed atomically, so a killed run resumes where it stopped; the export is a
complete pipeline folder (the teacher's text encoder and tokenizer copied beside the student's
UNet), which `jaxsteer.models.load` reads like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsteer.config import opt, parse, to_dict
from jaxsteer.errors import UserError
from jaxsteer.models.schedulers import add_noise, make_schedule
from jaxsteer.records import (
    atomic_write_bytes,
    check_out,
    publish_folder,
    read_json,
    write_json,
)
from jaxsteer.sampling import denoise, guided_x0_eps


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """How the student samples (what `models.bundled.PRESETS` must say for it)."""

    steps: int = opt(4, "student sampler steps K, 1-4 (trailing timesteps: 999,749,499,249 "
                     "for 4, as DMD2's SDXL student)")
    scheduler: str = opt("ddim", "ddim (deterministic) | lcm (re-noise each step, DMD2's)",
                         choices=("ddim", "lcm"))
    guidance: float = opt(0.0, "the student's own CFG scale; <= 1: one conditional call per "
                          "step (DMD2 students run without guidance)")

    def __post_init__(self):
        if not 1 <= self.steps <= 8:
            raise UserError(f"--student.steps must be in 1..8, got {self.steps}")

    def sampler(self) -> dict:
        """The `SamplerConfig` fields the student runs with."""
        return {"steps": self.steps, "guidance": self.guidance, "scheduler": self.scheduler}


@dataclasses.dataclass(frozen=True)
class DMDConfig:
    """The distribution-matching objective and its optimisers."""

    real_guidance: float = opt(3.0, "CFG scale of the teacher's (real) score: the shapes "
                               "preset's 3 (DMD2 on SDXL: 8)")
    lr: float = opt(2e-5, "student learning rate (Adam)")
    fake_lr: float = opt(2e-5, "fake-score learning rate (Adam)")
    fake_updates: int = opt(1, "fake-score updates per student update (DMD2's TTUR: 5, which "
                            "keeps diversity; 1 lets the student collapse)")
    warmup: int = opt(50, "linear learning-rate warm-up steps, both networks")
    t_min: int = opt(20, "smallest timestep the student's sample is noised to (DMD2: 0.02 T)")
    t_max: int = opt(980, "largest such timestep (DMD2: 0.98 T)")
    regression: float = opt(0.0, "weight of DMD's regression loss: MSE to the teacher's own "
                            "sample from the same noise (keeps diversity; 0: off)")
    regression_steps: int = opt(20, "teacher DDIM steps of the regression target")
    clip: float = opt(1.0, "global gradient-norm clip of each network")
    compute_dtype: str = opt("float32", "activation dtype of the UNets (params stay float32)",
                             choices=("float32", "bfloat16"))

    def __post_init__(self):
        if not 0 <= self.t_min < self.t_max <= 999:
            raise UserError(f"--dmd.t-min and --dmd.t-max must satisfy 0 <= t_min < t_max <= "
                            f"999, got {self.t_min}, {self.t_max}")
        if self.fake_updates < 1 or self.warmup < 1 or self.regression_steps < 1:
            raise UserError("--dmd.fake-updates, --dmd.warmup and --dmd.regression-steps must "
                            "be >= 1")
        if min(self.lr, self.fake_lr, self.regression) < 0 or self.real_guidance < 0:
            raise UserError("learning rates, --dmd.regression and --dmd.real-guidance must be "
                            ">= 0")

    def static(self) -> tuple:
        """What the compiled step depends on (the rest enters it as arrays)."""
        return (self.fake_updates, self.t_min, self.t_max, self.regression > 0,
                self.regression_steps, self.clip, self.compute_dtype)

    def hyper(self) -> dict[str, jax.Array]:
        return {k: jnp.float32(getattr(self, k))
                for k in ("real_guidance", "lr", "fake_lr", "warmup", "regression")}


@dataclasses.dataclass(frozen=True)
class DistillShapesRun:
    """Distils the shapes model into a few-step student and writes it as a pipeline folder."""

    out: Path = opt(Path("shapes-student"), "output pipeline folder", positional=True)
    teacher: Path | None = opt(None, "teacher pipeline folder (default: the bundled shapes "
                               "model)")
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


@flax.struct.dataclass
class DistillState:
    """Everything a resumed run needs (captions and noise are functions of seed and step)."""

    step: jax.Array
    student: Any        # UNet params of the student
    fake: Any           # UNet params of the fake score
    opt_student: Any
    opt_fake: Any


def dmd_surrogate(x0: jax.Array, real_x0: jax.Array, fake_x0: jax.Array) -> jax.Array:
    """DMD's loss on the student's samples x0 [b, c, h, w]: its gradient in x0 is
    ``(fake_x0 - real_x0) / mean|x0 - real_x0|`` per sample, divided by x0's size (the mean);
    ``real_x0`` / ``fake_x0`` are the two scores' clean estimates at the noised x0."""
    x0_sg = jax.lax.stop_gradient(x0)
    weight = jnp.mean(jnp.abs(x0_sg - real_x0), axis=(1, 2, 3), keepdims=True)
    g = jnp.nan_to_num((fake_x0 - real_x0) / jnp.maximum(weight, 1e-6))
    return 0.5 * jnp.mean((x0 - jax.lax.stop_gradient(x0_sg - g)) ** 2)


def _adam(clip: float) -> optax.GradientTransformation:
    # The learning rate is applied outside (an array), so one program serves every rate.
    return optax.chain(optax.clip_by_global_norm(clip), optax.scale_by_adam(b1=0.9, b2=0.999))


@functools.lru_cache(maxsize=4)
def make_distill_step(model: Any, student: StudentConfig, static: tuple) -> tuple[Any, Any]:
    """(``step(state, teacher_unet, text_params, ids, uncond, hyper, key) -> (state,
    metrics)``, ``init(student, fake) -> state``), jitted; ``static`` is `DMDConfig.static`.

    ``model`` is the teacher's definition (`jaxsteer.models.load`), whose ``predict`` the
    student, the fake and the real score all call with their own UNet params; ``ids`` [b, t]
    token ids of the step's captions, ``uncond`` the empty caption's TextCond [t, d].
    """
    fake_updates, t_min, t_max, regress, regression_steps, clip, _ = static
    sched = make_schedule(model.schedule, student.steps, student.scheduler)
    teacher_sched = make_schedule(model.schedule, regression_steps, "ddim")
    ac = jnp.asarray(model.schedule.alphas_cumprod, jnp.float32)
    tx = _adam(clip)
    cfg_student = student.guidance > 1.0

    def unet(p):
        return {"unet": p}

    # Unrolled on the CPU, where a differentiated loop over the UNet runs 11x slower; a loop
    # elsewhere, which compiles the UNet once instead of once per step.
    unroll = jax.default_backend() == "cpu"

    def student_sample(params, z, cond, uncond, keys):
        return denoise(model, unet(params), z, sched, cond, uncond if cfg_student else None,
                       jnp.float32(student.guidance), keys, remat=True, unroll=unroll)

    def x0_at(params, x_t, t_b, cond, uncond, w):
        return guided_x0_eps(model, unet(params), x_t, t_b, ac[t_b], cond, uncond, w)[0]

    def student_loss(params, fake, teacher, z, cond, uncond, keys, t_b, noise, hyper):
        x0 = student_sample(params, z, cond, uncond, keys)
        x_t = add_noise(jax.lax.stop_gradient(x0), noise, ac[t_b][:, None, None, None])
        real = x0_at(teacher, x_t, t_b, cond, uncond, hyper["real_guidance"])
        fake_x0 = x0_at(fake, x_t, t_b, cond, None, jnp.float32(1.0))
        loss = dmd_surrogate(x0, real, fake_x0)
        gap = jnp.mean(jnp.abs(fake_x0 - real)) / jnp.mean(jnp.abs(x0 - real))
        metrics = {"dmd": loss, "gap": jax.lax.stop_gradient(gap)}
        if regress:  # DMD's regression: the teacher's own sample from the same noise
            target = denoise(model, unet(teacher), z, teacher_sched, cond, uncond,
                             hyper["real_guidance"], keys, remat=False)
            metrics["regression"] = jnp.mean((x0 - jax.lax.stop_gradient(target)) ** 2)
            loss = loss + hyper["regression"] * metrics["regression"]
        return loss, (jax.lax.stop_gradient(x0), metrics)

    def fake_loss(params, x0, cond, t_b, noise):
        x_t = add_noise(x0, noise, ac[t_b][:, None, None, None])
        eps = model.predict(unet(params), x_t, t_b, cond)
        return jnp.mean((eps.astype(jnp.float32) - noise) ** 2)

    def apply(params, grads, opt_state, lr):
        updates, opt_state = tx.update(grads, opt_state)
        return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state

    def train_step(state: DistillState, teacher, text, ids, uncond, hyper, key):
        cond = model.encode_text({"text_encoder": text}, ids[:, None, :])
        b = ids.shape[0]
        shape = (b, *model.latent_shape)
        ks = jax.random.split(key, 4 + 3 * fake_updates)
        z = jax.random.normal(ks[0], shape, jnp.float32)
        keys = jax.random.split(ks[1], b)
        t_b = jax.random.randint(ks[2], (b,), t_min, t_max + 1)
        noise = jax.random.normal(ks[3], shape, jnp.float32)
        ramp = jnp.minimum(1.0, (state.step + 1.0) / hyper["warmup"])
        (_, (x0, metrics)), grads = jax.value_and_grad(student_loss, has_aux=True)(
            state.student, state.fake, teacher, z, cond, uncond, keys, t_b, noise, hyper)
        metrics["student_grad_norm"] = optax.global_norm(grads)
        params, opt_s = apply(state.student, grads, state.opt_student, ramp * hyper["lr"])
        fake, opt_f = state.fake, state.opt_fake
        for i in range(fake_updates):
            k_z, k_t, k_n = ks[4 + 3 * i: 7 + 3 * i]
            if i:  # TTUR: fresh samples of the updated student for every further update
                x0 = jax.lax.stop_gradient(student_sample(
                    params, jax.random.normal(k_z, shape), cond, uncond,
                    jax.random.split(k_z, b)))
            t_f = jax.random.randint(k_t, (b,), 0, len(ac))
            lf, gf = jax.value_and_grad(fake_loss)(fake, x0, cond, t_f,
                                                   jax.random.normal(k_n, shape))
            fake, opt_f = apply(fake, gf, opt_f, ramp * hyper["fake_lr"])
        metrics["fake"] = lf
        return DistillState(state.step + 1, params, fake, opt_s, opt_f), metrics

    def init(student_p: Any, fake_p: Any) -> DistillState:
        return DistillState(jnp.zeros((), jnp.int32), student_p, fake_p, tx.init(student_p),
                            tx.init(fake_p))

    return jax.jit(train_step, donate_argnums=0), jax.jit(init)


def teacher_folder(cfg: DistillShapesRun) -> Path:
    if cfg.teacher is None:
        from jaxsteer.models.bundled import folder
        return folder("shapes")
    if not (cfg.teacher / "model_index.json").exists():
        raise UserError(f"--teacher {cfg.teacher} is not a pipeline folder (no model_index.json)")
    return cfg.teacher


def load_teacher(folder: Path, cfg: DistillShapesRun):
    """(bundle, training definition): the teacher in float32, and its definition computing in
    ``cfg.dmd.compute_dtype`` (its own fingerprint, so compiled programs do not mix)."""
    from jaxsteer.models import load, resolve_attention
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
    return all(saved.get(k) == now[k] for k in ("teacher", "student", "dmd", "batch", "seed"))


def _restore(work: Path, template: DistillState, cfg: DistillShapesRun
             ) -> tuple[DistillState, list] | None:
    path = work / "state.msgpack"
    if not path.exists():
        return None
    progress = read_json(work / "progress.json")
    if not _same_run(progress.get("config", {}), to_dict(cfg)):
        raise UserError(f"the checkpoint in {work} is from another teacher, student, objective, "
                        "batch or seed; use another --work-dir or --out")
    state = flax.serialization.from_bytes(template, path.read_bytes())
    return jax.device_put(state), progress.get("log", [])


def _checkpoint(work: Path, state: DistillState, cfg: DistillShapesRun, log: list) -> None:
    atomic_write_bytes(work / "state.msgpack", flax.serialization.to_bytes(jax.device_get(state)))
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
    """A complete pipeline folder: the teacher's files with the student's UNet weights, its
    timesteps in the scheduler config and ``training.json`` saying how it was made; replaces
    ``out`` at the end."""
    from flax.serialization import msgpack_serialize
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("text_encoder", "tokenizer"):
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


def run(cfg: DistillShapesRun) -> dict:
    """Distils (or resumes) and exports the student to ``cfg.out``.

    Returns:
      {"folder", "step", "log": [{"step", "dmd", "gap", "fake", ...}, ...], "seconds",
      "steps_per_s", "sampler"}; "gap" is mean |fake x0 - real x0| / mean |x0 - real x0|, how
      far the two scores disagree on the student's samples, "fake" the fake score's loss.
    """
    from tqdm.auto import tqdm

    from jaxsteer.shapes.train import DataStream
    check_out(cfg.out, "out")
    work = check_out(cfg.work, "--work-dir")
    teacher_dir = teacher_folder(cfg)
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
    data = DataStream(teacher_dir / "tokenizer", cfg.batch, 0.0, cfg.seed)
    hyper = cfg.dmd.hyper()
    key = jax.random.fold_in(jax.random.key(cfg.seed), 2)
    start = step = int(state.step)
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=start, disable=not cfg.progress, desc="distill-shapes")
    with _stop_on_sigterm() as stop:
        while step < cfg.steps:
            state, metrics = step_fn(state, teacher_unet, text, data(step)["ids"], uncond,
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
    info = {"distillation": "DMD (distribution matching), jaxsteer.shapes.distill",
            "teacher": str(teacher_dir), "step": step, "sampler": sampler, "log": log,
            "config": to_dict(cfg)}
    export_student(teacher_dir, cfg.out, state.student, cfg.unet_dtype, info)
    return {"folder": str(cfg.out), "step": step, "log": log, "seconds": seconds,
            "steps_per_s": (step - start) / max(seconds, 1e-9), "sampler": sampler}


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.shapes.distill OUT [--flags]``: the CLI subcommand without the CLI."""
    cfg = parse(DistillShapesRun, sys.argv[1:] if argv is None else argv,
                "jaxsteer distill-shapes", DistillShapesRun.__doc__ or "")
    result = run(cfg)
    print(f"distilled {result['step']} steps in {result['seconds']:.0f} s; student in "
          f"{result['folder']}")


if __name__ == "__main__":
    main()
