"""The DMD objective of `jaxsteer distill-shapes` and its compiled training step.

What the student is (`StudentConfig`), the distribution-matching objective and its optimisers
(`DMDConfig`), and one jitted step that updates the student through DMD's surrogate and the fake
score by the denoising loss (`make_distill_step`); `jaxsteer.distill.run` runs, checkpoints
and exports it. The method and its choices are described there.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.schedulers import add_noise, make_schedule
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
