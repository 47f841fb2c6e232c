"""Diversity distillation (Gandikota & Bau 2025), the baseline of diversity restoration: the
base model takes the first step(s) of the trajectory, the distilled student the rest."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import sharding
from jaxsteer.errors import UserError
from jaxsteer.models.base import DiffusionModel, ModelBundle
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig, broadcast_cond, generate_handoff
from jaxsteer.steer import render_padded


@functools.lru_cache(maxsize=8)
def make_handoff_renderer(model: DiffusionModel, base_model: DiffusionModel,
                          sampler: SamplerConfig, base_steps: int, mesh):
    """Jitted ``f(params, base_params, cond_b, base_cond_b, uncond, base_uncond, base_guidance,
    keys_b) -> images``: `sampling.generate_handoff` under ``sampler``, batch split."""
    sched = sampler.schedule(model)

    def render(params, base_params, cond, base_cond, uncond, base_uncond, base_guidance, keys_b):
        lat = generate_handoff(model, params, cond, uncond, jnp.float32(sampler.guidance),
                               base_model, base_params, base_cond, base_uncond, base_guidance,
                               keys_b, sched, base_steps, shared_noise=sampler.shared_noise)
        return model.decode(params, lat)

    repl, split = sharding.replicated(mesh), sharding.batch_sharding(mesh)
    return jax.jit(render, in_shardings=(repl, repl, split, split, repl, repl, repl, split),
                   out_shardings=split)


def distilled_diversity(student: ModelBundle, sampler: SamplerConfig, base: ModelBundle,
                        base_guidance: float, prompt: str, keys_b: jax.Array, base_steps: int,
                        mesh, batch: int) -> np.ndarray:
    """Images [n, H, W, 3] of diversity distillation, one per key: ``base`` (with CFG scale
    ``base_guidance``) takes the first ``base_steps`` steps of ``sampler``'s schedule, then
    ``student``; each model is conditioned by its own text encoder. The baseline of
    ``jaxsteer diversify --baseline`` and of the ground-truth benchmark's diversity section."""
    for what, value in (("latent shape", "latent_shape"), ("noise schedule", "schedule")):
        if getattr(student.model, value) != getattr(base.model, value):
            raise UserError(f"the base model's {what} differs from the distilled model's: "
                            "diversity distillation needs a base of the same family and size")
    n = keys_b.shape[0]
    cond, uncond = encode_prompt(student, prompt, sampler.use_cfg)
    base_cond, base_uncond = encode_prompt(base, prompt, base_guidance > 1.0)
    render = make_handoff_renderer(student.model, base.model, sampler,
                                   base_steps, mesh)
    return render_padded(render, mesh, (student.params, base.params),
                         (broadcast_cond(cond, n), broadcast_cond(base_cond, n)),
                         (uncond, base_uncond, jnp.float32(base_guidance)), keys_b, batch)
