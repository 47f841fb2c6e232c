"""Few-step sampling schedules as plain arrays, and the conversions between model outputs.

We compute timesteps and alphas ourselves instead of using diffusers' Flax schedulers: those carry
mutable state objects, and the Flax Euler scheduler rejects ``timestep_spacing="trailing"``, which
SD-Turbo, SDXL-Turbo and DMD2 use. DDIM (eta = 0) and the Euler discrete sampler are the same
update written in different variables (DDIM is the exact Euler step of the probability-flow ODE in
``x / sqrt(alpha)``), so one deterministic update serves both; they differ only in the final
alpha (DDIM: 1 or alphas_cumprod[0]; Euler: sigma = 0, i.e. alpha = 1). ``lcm`` (DMD2, LCM) takes
the clean estimate at each step and re-noises it with fresh noise to the next timestep.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.models.base import NoiseSchedule

KINDS = ("ddim", "euler", "lcm")


@flax.struct.dataclass
class StepSchedule:
    """The K steps of one sampling run; arrays so that one compiled program serves any schedule.

    Attributes:
      t_s: [s] int32 training timesteps, noisiest first.
      alpha_s: [s] alphas_cumprod at each step's timestep.
      alpha_next_s: [s] alphas_cumprod the step moves to (1.0 at the end for a clean sample).
      renoise: whether each step re-noises its clean estimate with fresh noise (LCM / DMD2).
    """

    t_s: jax.Array
    alpha_s: jax.Array
    alpha_next_s: jax.Array
    renoise: bool = flax.struct.field(pytree_node=False, default=False)

    @property
    def num_steps(self) -> int:
        return int(self.t_s.shape[0])


def timesteps(noise: NoiseSchedule, steps: int, spacing: str | None = None) -> np.ndarray:
    """[steps] int timesteps, noisiest first, as diffusers' schedulers space them."""
    n = noise.num_train_timesteps
    if not 1 <= steps <= n:
        raise UserError(f"--steps must be between 1 and {n}, got {steps}")
    spacing = spacing or noise.timestep_spacing
    if spacing == "leading":
        ratio = n // steps
        ts = (np.arange(steps) * ratio).round()[::-1] + noise.steps_offset
    elif spacing == "trailing":
        ts = np.round(np.arange(n, 0, -n / steps)) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, n - 1, steps).round()[::-1]
    else:
        raise UserError(f"unknown timestep spacing {spacing!r}: use leading, trailing or linspace")
    return np.clip(ts, 0, n - 1).astype(np.int32)


def make_schedule(noise: NoiseSchedule, steps: int, kind: str = "ddim",
                  spacing: str | None = None, start_timestep: int | None = None,
                  explicit: tuple[int, ...] | None = None) -> StepSchedule:
    """Builds the step arrays.

    Args:
      noise: the model's training schedule.
      steps: K inference steps.
      kind: "ddim", "euler" or "lcm".
      spacing: override of the model's timestep spacing.
      start_timestep: begin at this timestep instead of the K-step schedule's first; the later
        steps are the schedule's timesteps below it (used by collect's ``--timestep``).
      explicit: the exact timesteps to use (e.g. DMD2's 999, 749, 499, 249).
    """
    if kind not in KINDS:
        raise UserError(f"unknown scheduler {kind!r}: use one of {', '.join(KINDS)}")
    ac = np.asarray(noise.alphas_cumprod, np.float64)
    ts = np.asarray(explicit, np.int32) if explicit else timesteps(noise, steps, spacing)
    if start_timestep is not None:
        if not 0 <= start_timestep < len(ac):
            raise UserError(f"--timestep must be in [0, {len(ac) - 1}], got {start_timestep}")
        ts = np.concatenate([[start_timestep], ts[ts < start_timestep]]).astype(np.int32)
    if np.any(np.diff(ts) >= 0):
        raise UserError(f"timesteps must strictly decrease, got {ts.tolist()}")
    final = 1.0 if (kind != "ddim" or noise.set_alpha_to_one) else ac[0]
    alpha = ac[ts]
    alpha_next = np.concatenate([ac[ts[1:]], [final]])
    return StepSchedule(t_s=jnp.asarray(ts), alpha_s=jnp.asarray(alpha, jnp.float32),
                        alpha_next_s=jnp.asarray(alpha_next, jnp.float32), renoise=kind == "lcm")


def to_x0_eps(out: jax.Array, x: jax.Array, alpha: jax.Array,
              prediction_type: str) -> tuple[jax.Array, jax.Array]:
    """Converts a denoiser output at noise level ``alpha`` into (clean estimate, noise estimate)."""
    a = jnp.sqrt(alpha).astype(x.dtype)
    s = jnp.sqrt(1.0 - alpha).astype(x.dtype)
    if prediction_type == "epsilon":
        return (x - s * out) / a, out
    if prediction_type == "v_prediction":
        return a * x - s * out, a * out + s * x
    if prediction_type == "sample":
        return out, (x - a * out) / s
    raise UserError(f"unsupported prediction_type {prediction_type!r}")


def add_noise(x0: jax.Array, noise: jax.Array, alpha: jax.Array) -> jax.Array:
    """Forward process q(x_t | x_0) at cumulative alpha ``alpha``."""
    return jnp.sqrt(alpha).astype(x0.dtype) * x0 + jnp.sqrt(1.0 - alpha).astype(x0.dtype) * noise


def step(x0: jax.Array, eps: jax.Array, alpha_next: jax.Array,
         fresh: jax.Array | None) -> jax.Array:
    """Moves to ``alpha_next``: DDIM/Euler with the predicted noise, LCM with ``fresh`` noise."""
    return add_noise(x0, eps if fresh is None else fresh, alpha_next)

