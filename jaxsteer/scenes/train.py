"""Trains the scenes model from scratch: the VAE, then the latent UNet and text encoder.

``jaxsteer train-scenes OUT [--flags]``, or ``python -m jaxsteer.scenes.train OUT [--flags]``
(the same command, through `jaxsteer.cli`; scripts/gpu_train_scenes.sh). Phase 1 trains the
AutoencoderKL on rendered scenes (L1 + L2 reconstruction of a posterior sample, a small KL
weight) and measures ``scaling_factor`` = 1 / std of the latents (SD's VAE config carries the
same number). Phase 2 trains the UNet and the text encoder jointly on the frozen VAE's scaled
latent samples, with the shapes model's DDPM schedule and epsilon loss, caption dropout to ""
for guidance. Images are rendered on the device inside each jitted step from factors the host
draws (`prompts.sample_captions`). Both phases checkpoint atomically and stop before
``--deadline-s``, so a sequence of short commands continues one run. When phase 1 ends only
the VAE's EMA is kept (the checkpoint then fits a 64 MiB carry). The call that finishes phase
2 exports the EMA weights (`model.export`; again whenever more steps were trained since); the
probe's quality table (`evaluate`) is written by a call that trains nothing (the next one),
so it has the whole deadline (or by the same call when it has no deadline).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsteer import cli
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.records import check_out, read_json, write_json
from jaxsteer.scenes import model as scenes_model
from jaxsteer.scenes.model import ScenesModelConfig
from jaxsteer.scenes.prompts import sample_captions
from jaxsteer.scenes.render import render
from jaxsteer.scenes.tokenizer import token_ids
from jaxsteer.shapes.model import alphas_cumprod, encode_text
from jaxsteer.shapes.train import OptimConfig, TrainState, ema_update, make_optimizer
from jaxsteer.train_state import load_state, save_state

PHASES = ("vae", "unet")


@dataclasses.dataclass(frozen=True)
class TrainScenesRun:
    """Trains the scenes model (VAE, then latent UNet + text encoder) into a pipeline folder."""

    out: Path = opt(Path("scenes-model"), "output pipeline folder", positional=True)
    model: ScenesModelConfig = opt(default_factory=ScenesModelConfig)
    vae_optim: OptimConfig = opt(default_factory=lambda: OptimConfig(lr=1e-3, warmup=200))
    optim: OptimConfig = opt(default_factory=OptimConfig)
    vae_steps: int = opt(4000, "VAE optimiser steps (phase 1)")
    steps: int = opt(30000, "UNet + text encoder optimiser steps (phase 2)")
    vae_batch: int = opt(64, "images per VAE step")
    batch: int = opt(256, "images per UNet step")
    kl_weight: float = opt(1e-4, "weight of the KL term (per latent element) in the VAE loss")
    p_uncond: float = opt(0.1, "share of empty captions (classifier-free guidance dropout)")
    seed: int = opt(0, "seed of the init, the data and the noise")
    deadline_s: float = opt(0.0, "stop (checkpoint, and export if done) this many seconds "
                            "after the start; 0: none")
    margin_s: float = opt(40.0, "seconds kept free before --deadline-s for the checkpoint")
    checkpoint_every: int = opt(1000, "steps between atomic checkpoints")
    log_every: int = opt(100, "steps between loss read-outs")
    dtype: str = opt("float16", "dtype of the exported weights", choices=("float16", "float32"))
    eval_n: int = opt(64, "samples per caption of the final quality table (0: no table)")
    eval_steps: int = opt(50, "DDIM steps of the quality table's samples")
    eval_guidance: float = opt(3.0, "CFG scale of the quality table's samples")
    work_dir: Path | None = opt(None, "checkpoint folder (default: <out>.train next to <out>)")

    def __post_init__(self):
        for name in ("vae_steps", "steps", "vae_batch", "batch", "checkpoint_every",
                     "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("kl_weight", "deadline_s", "margin_s", "eval_n"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise UserError("--p-uncond must be in [0, 1]")
        if self.eval_n and self.eval_steps < 1:
            raise UserError("--eval-steps must be >= 1 (or --eval-n 0: no quality table)")

    @property
    def work(self) -> Path:
        return self.work_dir or self.out.with_name(self.out.name + ".train")

    def identity(self) -> dict:
        """What a checkpoint must share with the run that resumes it."""
        d = to_dict(self)
        return {k: d[k] for k in ("model", "vae_optim", "optim", "vae_batch", "batch",
                                  "kl_weight", "p_uncond", "seed")}


def _advance(state: TrainState, tx, grads, decay: float) -> TrainState:
    """One AdamW update and the EMA (with a warm-up of its own, as the shapes model's)."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, ema_update(state.ema, params, state.step, decay),
                      opt_state)


def _images(cfg: ScenesModelConfig, factors: dict) -> jax.Array:
    return jnp.transpose(render(factors, cfg.image_size, jnp), (0, 3, 1, 2))   # [b, 3, H, W]


@functools.lru_cache(maxsize=4)
def make_vae_step(cfg: ScenesModelConfig, optim: OptimConfig, kl_weight: float) -> tuple:
    """(``step(state, batch, key) -> (state, metrics)``, ``init(params, ema)``), jitted; the
    batch's "factors" are rendered, its "ids" unused."""
    _, _, vae = scenes_model.build_modules(cfg, jnp.dtype(optim.compute_dtype))
    tx = make_optimizer(optim)

    def loss_fn(params, x, key):
        dist = vae.apply({"params": params}, x, method="encode")
        rec = vae.apply({"params": params}, dist.sample(key), method="decode")
        err = rec.astype(jnp.float32) - x
        kl = 0.5 * jnp.mean(dist.mean ** 2 + jnp.exp(dist.logvar) - 1.0 - dist.logvar)
        l1, l2 = jnp.mean(jnp.abs(err)), jnp.mean(err ** 2)
        return l1 + l2 + kl_weight * kl, {"l1": l1, "kl": kl}

    def step(state: TrainState, batch: dict, key: jax.Array):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, _images(cfg, batch["factors"]), key)
        return _advance(state, tx, grads, optim.ema), {"loss": loss, **aux}

    def init(params, ema):
        return TrainState(jnp.zeros((), jnp.int32), params, ema, tx.init(params))

    return jax.jit(step, donate_argnums=0), jax.jit(init)


@functools.lru_cache(maxsize=4)
def make_latents(cfg: ScenesModelConfig) -> Any:
    """``latents(vae_params, factors, key) -> [b, c, h, w]`` unscaled posterior samples."""
    _, _, vae = scenes_model.build_modules(cfg)

    def latents(vae_params, factors, key):
        dist = vae.apply({"params": vae_params}, _images(cfg, factors), method="encode")
        return dist.sample(key)

    return jax.jit(latents)


@functools.lru_cache(maxsize=4)
def make_unet_step(cfg: ScenesModelConfig, optim: OptimConfig) -> tuple:
    """(``step(state, batch, vae_params, scaling, key)``, ``init``), jitted: the epsilon loss
    of the UNet and text encoder on the frozen VAE's scaled latents. ``batch`` holds "ids"
    [b, T] and "factors"."""
    unet, text, _ = scenes_model.build_modules(cfg, jnp.dtype(optim.compute_dtype))
    latents = make_latents(cfg)
    tx = make_optimizer(optim)
    alphas = jnp.asarray(alphas_cumprod())

    def loss_fn(params, z0, ids, t_b, noise):
        emb = encode_text(text, params["text_encoder"], ids)
        a = alphas[t_b][:, None, None, None]
        eps = unet.apply({"params": params["unet"]}, jnp.sqrt(a) * z0 + jnp.sqrt(1.0 - a) * noise,
                         t_b, emb)
        return jnp.mean((eps.astype(jnp.float32) - noise) ** 2)

    def step(state: TrainState, batch: dict, vae_params, scaling, key: jax.Array):
        k_z, k_t, k_n = jax.random.split(key, 3)
        z0 = jax.lax.stop_gradient(latents(vae_params, batch["factors"], k_z)) * scaling
        t_b = jax.random.randint(k_t, (z0.shape[0],), 0, len(alphas))
        noise = jax.random.normal(k_n, z0.shape, jnp.float32)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, z0, batch["ids"], t_b, noise)
        return _advance(state, tx, grads, optim.ema), {"loss": loss}

    def init(params, ema):
        return TrainState(jnp.zeros((), jnp.int32), params, ema, tx.init(params))

    return jax.jit(step, donate_argnums=0), jax.jit(init)


def data(cfg: TrainScenesRun, phase: str, step: int) -> dict:
    """The batch of one step: a pure function of (seed, phase, step), for resumability."""
    rng = np.random.default_rng([cfg.seed, (*PHASES, "scale").index(phase), step])
    n = cfg.batch if phase == "unet" else cfg.vae_batch
    captions, factors = sample_captions(rng, n, cfg.p_uncond)
    return {"ids": token_ids(captions), "factors": factors}


def measure_scaling(cfg: TrainScenesRun, vae_params: Any, batches: int = 4) -> float:
    """1 / std of the VAE's latent samples over a few training batches."""
    latents = make_latents(cfg.model)
    z = [np.asarray(latents(vae_params, data(cfg, "scale", i)["factors"],
                            jax.random.key(i))) for i in range(batches)]
    return float(1.0 / max(np.std(np.concatenate(z)), 1e-6))


def _save(work: Path, phase: str, state: TrainState, progress: dict) -> None:
    save_state(work / f"{phase}.msgpack", state)
    write_json(work / "progress.json", progress)


def _train(cfg: TrainScenesRun, phase: str, state: TrainState, progress: dict,
           step_fn, t_end: float, log, stop=None) -> TrainState:
    """Runs ``phase`` until its step count, ``t_end`` or ``stop(phase, step)``; checkpoints;
    returns the state."""
    total = cfg.vae_steps if phase == "vae" else cfg.steps
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1 + PHASES.index(phase))
    step, t0, start = int(state.step), time.time(), int(state.step)
    while step < total and time.time() < t_end and not (stop and stop(phase, step)):
        state, metrics = step_fn(state, data(cfg, phase, step), jax.random.fold_in(key, step))
        step += 1
        if step % cfg.log_every == 0 or step == total:
            row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
            progress["losses"][phase].append(row)
            log(f"{phase} {row} {(step - start) / (time.time() - t0):.1f} steps/s")
        if step % cfg.checkpoint_every == 0:
            progress[f"{phase}_step"] = step
            _save(cfg.work, phase, state, progress)
    progress[f"{phase}_step"] = step
    _save(cfg.work, phase, state, progress)
    return state


def _state(cfg: TrainScenesRun, phase: str, init_fn, fresh: Any, progress: dict) -> TrainState:
    state = init_fn(jax.device_put(fresh), jax.device_put(fresh))
    path = cfg.work / f"{phase}.msgpack"
    if path.exists():
        state = load_state(path, state)
    elif progress[f"{phase}_step"] > 0:
        raise UserError(f"{path} is missing but {cfg.work / 'progress.json'} is at {phase} step "
                        f"{progress[f'{phase}_step']}; carry the whole --work-dir or use another")
    return state


def _vae_phase(cfg: TrainScenesRun, fresh: Any, progress: dict, t_end: float, log, stop
               ) -> Any | None:
    """The VAE's EMA weights once phase 1 is done (None: stopped before). Once done, only the
    EMA is kept (vae_ema.msgpack: phase 2 and the export need nothing else), so the VAE's step
    count is final: another --vae-steps is refused."""
    slim = cfg.work / "vae_ema.msgpack"
    done_at = progress.get("vae_steps") if progress.get("vae_done") else None
    if done_at is None and progress["unet_step"] > 0:
        done_at = progress["vae_step"]   # a checkpoint from before vae_done was recorded
    if done_at is not None and done_at != cfg.vae_steps:
        raise UserError(f"--vae-steps {cfg.vae_steps}: the VAE of {cfg.work} is final at "
                        f"{done_at} steps (the UNet trains on its latents); pass --vae-steps "
                        f"{done_at} or use another --work-dir")
    if progress.get("vae_done"):
        if not slim.exists():
            raise UserError(f"{slim} is missing but {cfg.work / 'progress.json'} says the VAE "
                            "phase is done; carry the whole --work-dir or use another")
        return load_state(slim, fresh)
    step_fn, init_fn = make_vae_step(cfg.model, cfg.vae_optim, cfg.kl_weight)
    state = _state(cfg, "vae", init_fn, fresh, progress)
    if int(state.step) < cfg.vae_steps:
        state = _train(cfg, "vae", state, progress, step_fn, t_end, log, stop)
        if int(state.step) < cfg.vae_steps:
            return None
    save_state(slim, state.ema)
    progress.update(vae_done=True, vae_steps=cfg.vae_steps)
    progress.pop("scaling_factor", None)   # measured on this VAE, below
    write_json(cfg.work / "progress.json", progress)
    (cfg.work / "vae.msgpack").unlink(missing_ok=True)   # its Adam moments: 2/3 of its size
    return state.ema


def run(cfg: TrainScenesRun, log=print, stop=None) -> dict:
    """Trains or resumes; once both phases are done, exports (again whenever the exported steps
    differ from the trained ones) and writes the quality table: in this call when it has no
    deadline or trained no step, else in the next call (a table gets a call's time, not what
    training left of one; an export takes seconds).

    Args:
      stop: ``stop(phase, step) -> bool``, checked before each step (as the deadline is): stop
        there, as at a deadline (tests use it to stop mid-phase).

    Returns:
      the progress record: {"vae_step", "unet_step", "scaling_factor", "losses", "done",
      "exported": [vae_step, unet_step], "quality"?, ...}.
    """
    t_start = time.time()
    t_end = t_start + cfg.deadline_s - cfg.margin_s if cfg.deadline_s > 0 else float("inf")
    check_out(cfg.out, "out")
    work = check_out(cfg.work, "--work-dir")
    work.mkdir(parents=True, exist_ok=True)
    progress = read_json(work / "progress.json") if (work / "progress.json").exists() else {
        "vae_step": 0, "unet_step": 0, "losses": {"vae": [], "unet": []},
        "identity": cfg.identity()}
    if progress["identity"] != cfg.identity():
        raise UserError(f"the checkpoint in {work} is from another model, optimiser, batch or "
                        "seed; use another --work-dir or --out")
    progress["done"] = False
    steps_before = (progress["vae_step"], progress["unet_step"])
    fresh = scenes_model.init_params(cfg.model, cfg.seed)
    vae_params = _vae_phase(cfg, fresh["vae"], progress, t_end, log, stop)
    if vae_params is None:
        return progress
    if "scaling_factor" not in progress:
        progress["scaling_factor"] = measure_scaling(cfg, vae_params)
        write_json(work / "progress.json", progress)
    unet_step, unet_init = make_unet_step(cfg.model, cfg.optim)
    both = {"unet": fresh["unet"], "text_encoder": fresh["text_encoder"]}
    state = _state(cfg, "unet", unet_init, both, progress)
    if int(state.step) < cfg.steps:
        scaling = jnp.float32(progress["scaling_factor"])
        state = _train(cfg, "unet", state, progress,
                       functools.partial(_unet_call, unet_step, vae_params, scaling), t_end, log,
                       stop)
        if int(state.step) < cfg.steps:
            return progress
    worked = steps_before != (progress["vae_step"], progress["unet_step"])
    exported = [progress["vae_step"], int(state.step)]
    if progress.get("exported") != exported or not (cfg.out / "model_index.json").exists():
        progress.pop("quality", None)   # of the weights exported before, if any
        scenes_model.export(cfg.out, cfg.model, {**jax.device_get(state.ema),
                                                 "vae": jax.device_get(vae_params)},
                            progress["scaling_factor"], cfg.dtype,
                            {"progress": {**progress, "done": True}, "config": to_dict(cfg)})
        progress["exported"] = exported
    progress["done"] = True
    write_json(work / "progress.json", progress)
    if cfg.eval_n and "quality" not in progress:
        if cfg.deadline_s > 0 and worked:
            log("quality table: in the next call (this one trained)")
        else:
            from jaxsteer.scenes.evaluate import quality_table, write_table
            t0 = time.time()
            progress["quality"] = quality_table(cfg.out, n=cfg.eval_n, steps=cfg.eval_steps,
                                                guidance=cfg.eval_guidance, seed=cfg.seed)
            progress["quality_s"] = round(time.time() - t0, 1)
            write_table(progress["quality"], cfg.out / "quality.md")
            write_json(cfg.out / "quality.json", progress["quality"])
            write_json(work / "progress.json", progress)
    return progress


def _unet_call(step_fn, vae_params, scaling, state, batch, key):
    return step_fn(state, batch, vae_params, scaling, key)


def command(cfg: TrainScenesRun) -> None:
    """`jaxsteer train-scenes`: `run` with each log line flushed (a log file follows the run),
    then one line of where the run stands, last, ending in "done" once nothing is left
    (scripts/gpu_train_scenes.sh repeats the command until then)."""
    p = run(cfg, log=lambda s: print(s, flush=True))
    left = ("" if p.get("done") and ("quality" in p or not cfg.eval_n) else
            "trained and exported; run the same command again for the quality table"
            if p.get("done") else "stopped at the deadline: run the same command again")
    print(f"vae {p['vae_step']}/{cfg.vae_steps}, unet {p['unet_step']}/{cfg.steps}: "
          f"{left or 'done'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m jaxsteer.scenes.train OUT [--flags]``: `jaxsteer train-scenes` itself, through
    `jaxsteer.cli.main` (the same flags, errors, exit codes and JAX set-up)."""
    return cli.main(["train-scenes", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
