"""The denoising loop: classifier-free guidance and a `lax.scan` over a `StepSchedule`.

Knows nothing of pairs, gradients or files. Every function is pure and traceable: the model is a
static hashable definition, weights and conditioning are arrays.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.base import DiffusionModel, TextCond
from jaxsteer.models.schedulers import KINDS, StepSchedule, make_schedule, step, to_x0_eps


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """How a run samples: the ``sampler`` field of every run config that samples (``--steps``
    is the short flag of ``--sampler.steps``: `config.aliases`)."""

    __config_aliases__ = {}   # every field has its bare name as short flag
    steps: int = opt(4, "K inference steps (DMD2: 4, SD-Turbo: 1)")
    scheduler: str = opt("ddim", "ddim | euler | lcm (lcm re-noises each step: DMD2, LCM)",
                         choices=KINDS)
    spacing: str | None = opt(None, "timestep spacing: leading | trailing | linspace "
                              "(default: the model's scheduler config)")
    timesteps: tuple[int, ...] = opt((), "explicit timesteps, noisiest first (DMD2: "
                                     "999,749,499,249)")
    guidance: float = opt(0.0, "classifier-free guidance scale w; <= 1 means a single "
                          "conditional call (the authors use 0 for DMD2)")
    remat: bool = opt(True, "rematerialise each denoising step in the backward pass (chains of "
                      "more than one step; see also --remat-policy)")
    shared_noise: float = opt(0.0, "share rho of one noise image common to every sample: x_T = "
                              "sqrt(rho) z_shared + sqrt(1 - rho) z_i (0: independent samples; "
                              "> 0 collapses diversity on purpose, as model shapes-turbo does)")

    def __post_init__(self):
        if self.steps < 1:
            raise UserError(f"--steps must be >= 1, got {self.steps}")
        if self.guidance < 0:
            raise UserError(f"--guidance must be >= 0, got {self.guidance}")
        if not 0.0 <= self.shared_noise < 1.0:
            raise UserError(f"--shared-noise must be in [0, 1), got {self.shared_noise}")

    @property
    def use_cfg(self) -> bool:
        # Like diffusers: guidance above 1 needs the unconditional branch; otherwise skip it.
        return self.guidance > 1.0

    def schedule(self, model: DiffusionModel, start_timestep: int | None = None) -> StepSchedule:
        return make_schedule(model.schedule, self.steps, self.scheduler, self.spacing,
                             start_timestep, self.timesteps or None)


@functools.lru_cache(maxsize=16)
def jit_encode_text(model: DiffusionModel):
    """The model's text encoder, jitted once per model definition (not once per caller)."""
    return jax.jit(model.encode_text)


def broadcast_cond(cond: TextCond, batch: int) -> TextCond:
    """Gives an unbatched TextCond ([t, d]) a leading batch axis."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (batch, *a.shape)), cond)


def guided_x0_eps(model: DiffusionModel, params, x_bchw: jax.Array, t: jax.Array,
                  alpha: jax.Array, cond: TextCond, uncond: TextCond | None,
                  guidance: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One denoiser evaluation (two with CFG) -> (clean estimate, noise estimate), both [b,c,h,w].

    ``cond`` is batched ([b, t, d]); ``uncond`` is unbatched ([t, d]) or None for no guidance.
    ``t`` and ``alpha`` are one timestep for the batch ([]) or one per sample ([b]).
    """
    b = x_bchw.shape[0]
    t_b = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (b,))
    if jnp.ndim(alpha) == 1:
        alpha = alpha[:, None, None, None]
    if uncond is None:
        out = model.predict(params, x_bchw, t_b, cond)
    else:
        both = jax.tree.map(lambda u, c: jnp.concatenate([u, c]), broadcast_cond(uncond, b), cond)
        out2 = model.predict(params, jnp.concatenate([x_bchw, x_bchw]), jnp.concatenate([t_b, t_b]),
                             both)
        out_u, out_c = out2[:b], out2[b:]
        out = out_u + guidance.astype(out_u.dtype) * (out_c - out_u)
    return to_x0_eps(out, x_bchw, alpha, model.schedule.prediction_type)


def run_steps(model: DiffusionModel, params, x_bchw: jax.Array, sched: StepSchedule,
              cond: TextCond, uncond: TextCond | None, guidance: jax.Array,
              keys_b: jax.Array | None = None, remat: bool = True, first: int = 0,
              unroll: bool = False) -> tuple[jax.Array, jax.Array]:
    """Runs every step of ``sched`` from ``x_bchw`` -> (the state after the last step, that
    step's clean estimate).

    The steps are one ``lax.scan`` so the loop compiles once whatever K is; with ``remat`` each
    step is recomputed in the backward pass instead of keeping its activations (K > 1 only).
    ``keys_b`` (one key per sample) is needed only for schedules that re-noise (LCM / DMD2); each
    sample's fresh noise comes from its own key, so it does not depend on the batch it ran in.
    ``first`` is the index of ``sched``'s first step in the whole trajectory (a trajectory split
    between two models draws the same fresh noise as one model running it all). ``unroll``
    writes the steps out instead of looping: differentiating through the loop of a UNet runs
    11x slower on XLA's CPU backend (60 s against 5.3 s for 4 steps of the shapes model, 8
    images), so training through a few steps unrolls them.
    """
    if sched.renoise and keys_b is None:
        raise ValueError("a re-noising schedule needs one key per sample")

    def body(x, inputs):
        t, alpha, alpha_next, i = inputs
        x0, eps = guided_x0_eps(model, params, x, t, alpha, cond, uncond, guidance)
        fresh = None
        if sched.renoise:
            fresh = jax.vmap(
                lambda k: jax.random.normal(jax.random.fold_in(k, i), x.shape[1:], x.dtype))(keys_b)
        return step(x0, eps, alpha_next, fresh), x0

    if remat and sched.num_steps > 1:
        # (checkpointing the only step would recompute it and save no memory)
        body = jax.checkpoint(body)
    idx = first + jnp.arange(sched.num_steps)
    xs = (sched.t_s, sched.alpha_s, sched.alpha_next_s, idx)
    if sched.num_steps == 1:
        # One call (the method's default): no scan, whose linearisation re-traces the UNet and
        # costs seconds of tracing on every process start.
        return body(x_bchw, jax.tree.map(lambda a: a[0], xs))
    x, x0_s = jax.lax.scan(body, x_bchw, xs, unroll=unroll)
    return x, x0_s[-1]


def denoise(model: DiffusionModel, params, x_bchw: jax.Array, sched: StepSchedule,
            cond: TextCond, uncond: TextCond | None, guidance: jax.Array,
            keys_b: jax.Array | None = None, remat: bool = True,
            unroll: bool = False) -> jax.Array:
    """Runs every step of ``sched`` from the noisy ``x_bchw`` and returns the sample: the state
    after the last step (`run_steps`), as diffusers' schedulers return it. That is the last
    clean estimate itself where the schedule ends at alpha 1 (``set_alpha_to_one``, as the
    shapes model; LCM); SD's DDIM (``set_alpha_to_one: false``) ends at ``alphas_cumprod[0]``
    (0.99915), 0.029 of the noise estimate away from it, and a render of the last estimate
    differed from diffusers' by 1.5e-3 on [0, 1] pixels (scripts/interop_roundtrip.py)."""
    return run_steps(model, params, x_bchw, sched, cond, uncond, guidance, keys_b, remat,
                     unroll=unroll)[0]


def split_schedule(sched: StepSchedule, k: int) -> tuple[StepSchedule, StepSchedule]:
    """(the first ``k`` steps, the rest) of a schedule; each keeps its own alphas, so running
    one after the other is running the whole."""
    if not 0 < k < sched.num_steps:
        raise UserError(f"a {sched.num_steps}-step schedule splits after 1..{sched.num_steps - 1}"
                        f" steps, not {k}")
    part = lambda sl: StepSchedule(sched.t_s[sl], sched.alpha_s[sl], sched.alpha_next_s[sl],  # noqa: E731
                                   sched.renoise)
    return part(slice(0, k)), part(slice(k, None))


# The key of the noise image that `SamplerConfig.shared_noise` mixes into every sample.
SHARED_NOISE_KEY = 20260101


def initial_noise(model: DiffusionModel, keys_b: jax.Array, dtype=jnp.float32,
                  shared_noise: float = 0.0) -> jax.Array:
    """[b] keys -> [b, c, h, w] starting noise x_T, from ``fold_in(k, 0)`` of each sample's key.

    ``shared_noise`` (rho, static) mixes one fixed noise image into every sample's start,
    keeping unit variance: a generator that varies little, like an over-distilled model.
    """
    c, h, w = model.latent_shape
    x_T = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (c, h, w), dtype))(keys_b)
    if shared_noise:
        z = jax.random.normal(jax.random.key(SHARED_NOISE_KEY), (c, h, w), dtype)
        x_T = (shared_noise ** 0.5) * z + ((1.0 - shared_noise) ** 0.5) * x_T
    return x_T


def step_keys(keys_b: jax.Array) -> jax.Array:
    """The keys of each sample's re-noising draws (``fold_in(k, 1)``)."""
    return jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys_b)


def generate(model: DiffusionModel, params, cond: TextCond, uncond: TextCond | None,
             keys_b: jax.Array, sched: StepSchedule, guidance: jax.Array,
             remat: bool = False, dtype=jnp.float32, shared_noise: float = 0.0) -> jax.Array:
    """Samples one latent per key: [b] keys -> [b, c, h, w] clean latents.

    Each sample's randomness comes only from its own key (initial noise from ``fold_in(k, 0)``,
    re-noising from ``fold_in(k, 1)``), so a sample does not depend on its batch or device.
    ``shared_noise``: see `initial_noise`.
    """
    x_T = initial_noise(model, keys_b, dtype, shared_noise)
    return denoise(model, params, x_T, sched, cond, uncond, guidance, step_keys(keys_b), remat)


def generate_handoff(model: DiffusionModel, params, cond: TextCond, uncond: TextCond | None,
                     guidance: jax.Array, base_model: DiffusionModel, base_params,
                     base_cond: TextCond, base_uncond: TextCond | None, base_guidance: jax.Array,
                     keys_b: jax.Array, sched: StepSchedule, base_steps: int,
                     dtype=jnp.float32, shared_noise: float = 0.0) -> jax.Array:
    """Diversity distillation (Gandikota & Bau 2025): the base model takes the first
    ``base_steps`` (static) steps of the distilled model's schedule, with its own conditioning
    and guidance, and the distilled model (``model``, ``params``) the rest, from the starting
    noise and re-noising draws `generate` uses on the same keys: only the first steps' model
    differs from a plain run of the distilled model.
    """
    head, tail = split_schedule(sched, base_steps)
    x_T = initial_noise(model, keys_b, dtype, shared_noise)
    keys = step_keys(keys_b)
    x, _ = run_steps(base_model, base_params, x_T, head, base_cond, base_uncond, base_guidance,
                     keys, remat=False)
    return run_steps(model, params, x, tail, cond, uncond, guidance, keys, remat=False,
                     first=base_steps)[0]
