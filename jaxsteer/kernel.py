"""The generate-and-differentiate kernel (DESIGN.md section 1.3), jitted once and sharded.

`jaxsteer.collect.Collector` drives it (placement, padding, batches, memory).

For each pair (A, B): noise A's latent to the first step's timestep with fresh noise, let the
model estimate the clean latent (one denoiser call by default, or the remaining steps unrolled),
and take the gradient of ``mse(feature(estimate), feature(B))`` with respect to the prompt's
token-embedding rows of the chosen word. Without a pool, A and B are fresh generations from two
seeds and both whole chains are differentiated.

Per-pair gradients come from one backward pass: each pair gets its own copy of the embedding
(through a per-pair offset ``delta_prd`` at zero), so the gradient of the summed loss with respect
to ``delta_prd`` holds every pair's gradient. Per-prompt data (embeddings, token rows) are array
arguments, so one compiled program serves every prompt of a survey.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh

from jaxsteer import export_keys, exported, sharding
from jaxsteer.models.base import DiffusionModel, TextCond
from jaxsteer.models.schedulers import StepSchedule, add_noise
from jaxsteer.sampling import broadcast_cond, generate, run_steps

FEATURES = ("latents", "pixels")


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """Everything static about the kernel: changing any of it compiles a new program."""

    model: DiffusionModel
    pool: bool = True           # False: A and B are fresh generations (pool-free variant)
    use_cfg: bool = False
    feature: str | Callable = "latents"   # or a pure function latents [p,c,h,w] -> features
    remat: bool = True
    shared_noise: float = 0.0   # SamplerConfig.shared_noise of pool-free generations


@dataclasses.dataclass(frozen=True)
class PromptInputs:
    """Per-prompt arrays: the conditioning, the unconditional branch, the differentiated rows."""

    cond: TextCond            # emb [t, d] (unbatched)
    uncond: TextCond | None   # emb [t, d], or None without guidance
    rows_r: np.ndarray        # [r_padded] int32 token rows; duplicates pad to a power of two
    num_rows: int             # the first num_rows entries of rows_r are the real rows


@struct.dataclass
class KernelInputs:
    """The kernel's per-call inputs, replicated over the mesh: one prompt's arrays and the key."""

    cond: TextCond               # emb [t, d] (unbatched)
    uncond: TextCond | None      # emb [t, d], or None without guidance
    rows_r: Any                  # [r_padded] int32 differentiated token rows
    key: Any                     # key of the pair noise (folded with each pair's index)
    sched: StepSchedule          # the steps the kernel runs (one by default)
    guidance: Any                # float32 scalar


@struct.dataclass
class PairBatch:
    """The kernel's batch of pairs, split over the data axis: pair indices and, with a pool,
    the pairs' latents."""

    idx_p: Any                   # [p] int32 pair index (folded into the key)
    a: Any = None                # [p, c, h, w] pool latent A (pool kernels only)
    b: Any = None                # [p, c, h, w] pool latent B, the target


def _features(spec: KernelSpec, params: Any, x_bchw: jax.Array) -> jax.Array:
    if callable(spec.feature):
        return spec.feature(x_bchw)
    if spec.feature == "pixels":
        return spec.model.decode(params, x_bchw)
    return x_bchw


def _per_pair_mse(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(a - b).reshape(a.shape[0], -1), axis=1)


def pair_loss(delta_prd: jax.Array, spec: KernelSpec, params: Any, inputs: KernelInputs,
              batch: PairBatch) -> jax.Array:
    """Summed loss over the pairs; its gradient w.r.t. ``delta_prd`` is the per-pair gradient."""
    model = spec.model
    sched: StepSchedule = inputs.sched
    emb_td = inputs.cond.emb
    p = delta_prd.shape[0]
    offset = jnp.zeros((p, *emb_td.shape), delta_prd.dtype).at[:, inputs.rows_r, :].add(delta_prd)
    cond = broadcast_cond(inputs.cond, p)
    cond = cond.replace(emb=cond.emb + offset)
    keys_p = jax.vmap(jax.random.fold_in, (None, 0))(inputs.key, batch.idx_p)
    guidance = inputs.guidance
    if spec.pool:
        noise = jax.vmap(lambda k, x: jax.random.normal(jax.random.fold_in(k, 0), x.shape,
                                                        x.dtype))(keys_p, batch.a)
        x_t = add_noise(batch.a, noise, sched.alpha_s[0])
        step_keys = jax.vmap(jax.random.fold_in, (0, None))(keys_p, 1)
        # The last step's clean estimate, not the state after it: with the schedule cut to its
        # first step, that state is the DDIM / LCM update towards the next timestep, mostly
        # the noise x_t (whose residual against B carries no signal of the prompt).
        _, x0 = run_steps(model, params, x_t, sched, cond, inputs.uncond, guidance, step_keys,
                          spec.remat)
        target = jax.lax.stop_gradient(_features(spec, params, batch.b))
    else:
        # A and B of every pair in one chain of batch 2p (one UNet call per step instead of two
        # of half the batch: larger matmuls, half the launches); each sample depends only on its
        # key, so this is the same function as two chains.
        keys_ab = jnp.concatenate([jax.vmap(jax.random.fold_in, (0, None))(keys_p, j)
                                   for j in (0, 1)])
        cond_ab = jax.tree.map(lambda a: jnp.concatenate([a, a]), cond)
        x_ab = generate(model, params, cond_ab, inputs.uncond, keys_ab, sched, guidance,
                        spec.remat, shared_noise=spec.shared_noise)
        f_ab = _features(spec, params, x_ab)
        return jnp.sum(_per_pair_mse(f_ab[:p], f_ab[p:]))
    return jnp.sum(_per_pair_mse(_features(spec, params, x0), target))


def pair_grads(spec: KernelSpec, params: Any, inputs: KernelInputs,
               batch: PairBatch) -> jax.Array:
    """[p, r, d] gradients of each pair's loss w.r.t. the prompt's token rows."""
    p = batch.idx_p.shape[0]
    r = inputs.rows_r.shape[0]
    delta = jnp.zeros((p, r, inputs.cond.emb.shape[-1]), jnp.float32)
    return jax.grad(pair_loss)(delta, spec, params, inputs, batch)


def kernel_key(spec: KernelSpec) -> str | None:
    """The exported-program cache key of ``spec`` (`jaxsteer.exported`), or None to not cache.

    The spec's dataclass fields that take part in ``==`` (the model's by its ``fingerprint`` and
    knobs: attention, remat, time ids, schedule, ...), as text that is the same in every
    process. A user's feature function has no such text: those kernels are traced each time.
    """
    if callable(spec.feature) or not isinstance(getattr(spec.model, "fingerprint", None), str):
        return None
    text = export_keys.stable_repr(spec)
    return None if text is None else f"jaxsteer.collect.pair_grads:{text}"


def make_kernel(spec: KernelSpec, mesh: Mesh,
                params_layout: sharding.ParamLayout | None = None) -> Callable:
    """The jitted, sharded kernel ``f(params, inputs, batch) -> grads_prd``: params replicated
    (or placed as ``params_layout`` says: `sharding.param_layout`), per-prompt inputs
    replicated, the batch of pairs split over the mesh (`sharding.batch_sharding`).

    Cached on (spec, mesh): every Collector of the same model and settings in a process (a
    survey's prompts, a resumed run) shares one compiled program. Across processes its trace is
    cached beside JAX's compilation cache (`jaxsteer.exported`), so a warm start skips tracing.
    """
    return _cached_kernel(spec, mesh, params_layout)   # one cache key with or without a layout


@functools.lru_cache(maxsize=16)
def _cached_kernel(spec: KernelSpec, mesh: Mesh,
                   params_layout: sharding.ParamLayout | None) -> Callable:
    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    params_sh = repl if params_layout is None else params_layout.shardings(mesh)
    return exported.cached_jit(functools.partial(pair_grads, spec),
                               in_shardings=(params_sh, repl, split), out_shardings=split,
                               key=kernel_key(spec))
