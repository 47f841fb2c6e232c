"""`jaxsteer train-shapes`: trains the shapes model from scratch on rendered data.

Epsilon-prediction DDPM loss, text encoder and UNet trained jointly with AdamW (linear warm-up,
then constant; the exported weights are an EMA, which does the averaging a decay would), caption
dropout to "" for classifier-free guidance. The host only draws captions and factor values (a
few hundred numbers per step); the images are rendered on the device inside the jitted step.
The state is checkpointed atomically, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsteer.config import opt, parse, to_dict
from jaxsteer.errors import UserError
from jaxsteer.records import check_out, read_json, write_json
from jaxsteer.shapes import model as shapes_model
from jaxsteer.shapes.captions import BandTable, training_distribution
from jaxsteer.shapes.model import ShapesModelConfig
from jaxsteer.shapes.render import render
from jaxsteer.shapes.tokenizer import write_tokenizer
from jaxsteer.train_state import load_state, save_state


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimiser and loss settings (hashable: they key the compiled train step)."""

    lr: float = opt(5e-4, "AdamW peak learning rate")
    warmup: int = opt(500, "linear warm-up steps")
    weight_decay: float = opt(1e-4, "AdamW decoupled weight decay")
    clip: float = opt(1.0, "global gradient-norm clip")
    ema: float = opt(0.999, "EMA decay of the exported weights (0: export the raw weights)")
    compute_dtype: str = opt("float32", "activation dtype: float32 | bfloat16 (params stay f32)",
                             choices=("float32", "bfloat16"))


@dataclasses.dataclass(frozen=True)
class TrainShapesRun:
    """Trains the bundled shapes model and writes it as a diffusers pipeline folder."""

    out: Path = opt(Path("shapes-model"), "output pipeline folder", positional=True)
    model: ShapesModelConfig = opt(default_factory=ShapesModelConfig)
    optim: OptimConfig = opt(default_factory=OptimConfig)
    steps: int = opt(20000, "optimiser steps (a resumed run counts from its checkpoint)")
    batch: int = opt(256, "images per step")
    p_uncond: float = opt(0.1, "share of empty captions (classifier-free guidance dropout)")
    seed: int = opt(0, "seed of the model init, the data and the noise")
    time_limit_s: float = opt(0.0, "stop (checkpoint and export) after this many seconds; 0: none")
    checkpoint_every: int = opt(1000, "steps between atomic checkpoints of the full state")
    log_every: int = opt(50, "steps between loss read-outs (each one syncs with the device)")
    unet_dtype: str = opt("float16", "dtype of the exported UNet weights (keeps the package small)",
                          choices=("float16", "float32"))
    work_dir: Path | None = opt(None, "checkpoint folder (default: <out>.train next to <out>)")
    init_from: Path | None = opt(None, "start from the weights of this pipeline folder (e.g. the "
                                 "bundled model, to train it further) instead of a random init")
    progress: bool = opt(True, "show a tqdm progress bar")

    def __post_init__(self):
        for name in ("steps", "batch", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")
        if not 0.0 <= self.p_uncond < 1.0:
            raise UserError(f"--p-uncond must be in [0, 1), got {self.p_uncond}")

    @property
    def work(self) -> Path:
        return self.work_dir or self.out.with_name(self.out.name + ".train")


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs (the data stream is a function of seed and step)."""

    step: jax.Array
    params: Any
    ema: Any
    opt_state: Any


def make_optimizer(cfg: OptimConfig) -> optax.GradientTransformation:
    """Global-norm clip, then AdamW with a linear warm-up to a constant rate (shared with the
    scenes model's trainer)."""
    lr = optax.linear_schedule(0.0, cfg.lr, max(cfg.warmup, 1))
    return optax.chain(optax.clip_by_global_norm(cfg.clip),
                       optax.adamw(lr, b1=0.9, b2=0.99, weight_decay=cfg.weight_decay))


def ema_update(ema: Any, params: Any, step: jax.Array, decay: float) -> Any:
    """The EMA after a step, with a warm-up of its own (decay ``min(decay, (1 + step) / (10 +
    step))``), so early exports are not dominated by the random init."""
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


@functools.lru_cache(maxsize=8)
def make_train_step(model_cfg: ShapesModelConfig, optim: OptimConfig) -> Any:
    """(``train_step(state, batch, key) -> (state, metrics)``, ``init(params, ema) -> state``),
    jitted.

    ``batch`` holds "ids" [b, 16] int32 token ids and "factors" (captions.py units, each [b]);
    images [b, H, W, 3] are rendered inside the step. Cached so that runs with the same model
    and optimiser share one compiled program.
    """
    unet, text = shapes_model.build_modules(model_cfg, jnp.dtype(optim.compute_dtype))
    tx = make_optimizer(optim)
    alphas = jnp.asarray(shapes_model.alphas_cumprod())

    def loss_fn(params, x0_bchw, ids_bt, t_b, noise_bchw):
        emb_btd = shapes_model.encode_text(text, params["text_encoder"], ids_bt)
        a = alphas[t_b][:, None, None, None]
        x_t = jnp.sqrt(a) * x0_bchw + jnp.sqrt(1.0 - a) * noise_bchw
        eps = unet.apply({"params": params["unet"]}, x_t, t_b, emb_btd)
        return jnp.mean((eps.astype(jnp.float32) - noise_bchw) ** 2)

    def train_step(state: TrainState, batch: dict, key: jax.Array):
        k_t, k_n = jax.random.split(key)
        x0 = jnp.transpose(render(batch["factors"], model_cfg.image_size, jnp), (0, 3, 1, 2))
        b = x0.shape[0]
        t_b = jax.random.randint(k_t, (b,), 0, len(alphas))
        noise = jax.random.normal(k_n, x0.shape, jnp.float32)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x0, batch["ids"], t_b, noise)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema, params, state.step, optim.ema)
        new = TrainState(state.step + 1, params, ema, opt_state)
        return new, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    def init(params: Any, ema: Any) -> TrainState:
        # params and ema arrive as separate buffers: the step donates both.
        return TrainState(jnp.zeros((), jnp.int32), params, ema, tx.init(params))

    return jax.jit(train_step, donate_argnums=0), jax.jit(init)


class DataStream:
    """Host side of the data: step -> batch, a pure function of (seed, step) for resumability."""

    def __init__(self, tokenizer_dir: Path, batch: int, p_uncond: float, seed: int):
        from transformers import CLIPTokenizer
        tok = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
        self.captions, self.weights = training_distribution(p_uncond)
        self.table = BandTable.build(self.captions)
        self.ids_ct = np.asarray(tok(list(self.captions), padding="max_length",
                                     max_length=tok.model_max_length)["input_ids"], np.int32)
        self.batch, self.seed = batch, seed

    def __call__(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, step])
        idx = rng.choice(len(self.captions), self.batch, p=self.weights)
        return {"ids": self.ids_ct[idx], "factors": self.table.draw(rng, idx)}


def _restore(work: Path, template: TrainState, cfg: TrainShapesRun
             ) -> tuple[TrainState, list] | None:
    """(state, losses) of the checkpoint in ``work``, or None when there is none."""
    path = work / "state.msgpack"
    if not path.exists():
        return None
    progress = read_json(work / "progress.json")
    saved, now = progress.get("config", {}), to_dict(cfg)
    if (saved.get("model"), saved.get("optim")) != (now["model"], now["optim"]):
        raise UserError(f"the checkpoint in {work} is from another model or optimiser "
                        "configuration; use another --work-dir or --out")
    return load_state(path, template), progress.get("losses", [])


def _checkpoint(work: Path, state: TrainState, cfg: TrainShapesRun, losses: list) -> None:
    save_state(work / "state.msgpack", state)
    write_json(work / "progress.json", {"step": int(state.step), "losses": losses,
                                        "config": to_dict(cfg)})


def _initial_params(cfg: TrainShapesRun) -> Any:
    """Random init, or the float32 weights of ``cfg.init_from`` (same architecture required)."""
    fresh = shapes_model.init_params(cfg.model, cfg.seed)
    if cfg.init_from is None:
        return fresh
    loaded = jax.device_get(shapes_model.load(cfg.init_from).params)
    want, got = jax.tree.map(np.shape, fresh), jax.tree.map(np.shape, loaded)
    if want != got:
        raise UserError(f"--init-from {cfg.init_from}: its weights do not fit --model "
                        f"({len(jax.tree.leaves(got))} vs {len(jax.tree.leaves(want))} arrays, "
                        "or other shapes); pass the --model.* flags it was trained with")
    return jax.tree.map(lambda x: np.asarray(x, np.float32), loaded)


def run(cfg: TrainShapesRun) -> dict:
    """Trains (or resumes) and exports the EMA weights to ``cfg.out``.

    Returns:
      {"folder", "step", "losses": [[step, loss], ...], "seconds", "steps_per_s"}.
    """
    from tqdm.auto import tqdm
    check_out(cfg.out, "out")
    work = check_out(cfg.work, "--work-dir")
    if cfg.init_from is not None and not (cfg.init_from / "model_index.json").exists():
        raise UserError(f"--init-from {cfg.init_from} is not a shapes pipeline folder (no "
                        "model_index.json)")  # before the work folder is made
    work.mkdir(parents=True, exist_ok=True)
    write_tokenizer(work / "tokenizer")
    step_fn, init_fn = make_train_step(cfg.model, cfg.optim)
    key_data = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    fresh = _initial_params(cfg)
    state = init_fn(jax.device_put(fresh), jax.device_put(fresh))
    restored = _restore(work, state, cfg)
    state, losses = restored if restored is not None else (state, [])
    data = DataStream(work / "tokenizer", cfg.batch, cfg.p_uncond, cfg.seed)
    start = step = int(state.step)
    t0 = time.time()
    bar = tqdm(total=cfg.steps, initial=start, disable=not cfg.progress, desc="train-shapes")
    while step < cfg.steps:
        state, metrics = step_fn(state, data(step), jax.random.fold_in(key_data, step))
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            losses.append([step, float(metrics["loss"])])
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            if not cfg.progress:  # a log file gets one line per read-out instead of a bar
                print(f"step {step} loss {losses[-1][1]:.4f} "
                      f"grad_norm {float(metrics['grad_norm']):.3f} {time.time() - t0:.0f} s",
                      flush=True)
        out_of_time = cfg.time_limit_s > 0 and time.time() - t0 > cfg.time_limit_s
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
            _checkpoint(work, state, cfg, losses)
        if out_of_time:
            break
    bar.close()
    seconds = time.time() - t0
    weights = state.ema if cfg.optim.ema > 0 else state.params
    info = {"step": step, "losses": losses, "config": to_dict(cfg)}
    shapes_model.export(cfg.out, cfg.model, weights, cfg.unet_dtype, info)
    return {"folder": str(cfg.out), "step": step, "losses": losses, "seconds": seconds,
            "steps_per_s": (step - start) / max(seconds, 1e-9)}


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxsteer.shapes.train OUT [--flags]``: the CLI subcommand without the CLI."""
    cfg = parse(TrainShapesRun, sys.argv[1:] if argv is None else argv, "jaxsteer train-shapes",
                TrainShapesRun.__doc__ or "")
    result = run(cfg)
    print(f"trained {result['step']} steps in {result['seconds']:.0f} s; "
          f"model in {result['folder']}")


if __name__ == "__main__":
    main()
