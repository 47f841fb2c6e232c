import jax
import numpy as np
import pytest

from jaxsteer import sharding
from jaxsteer.sample import encode_prompt, make_generator
from jaxsteer.sampling import SamplerConfig


def test_a_sample_does_not_depend_on_its_batch_or_device_count(tiny_bundle):
    """Sample i comes from its own key alone: batched on 8 devices == one by one on 1 device."""
    cfg = SamplerConfig(steps=2, guidance=2.0, scheduler="lcm")  # CFG and re-noising paths
    cond, uncond = encode_prompt(tiny_bundle, "a red circle", cfg.use_cfg)
    keys = jax.random.split(jax.random.key(3), 8)
    gen8 = make_generator(tiny_bundle.model, cfg, sharding.make_mesh())
    gen1 = make_generator(tiny_bundle.model, cfg, sharding.make_mesh(devices=jax.devices()[:1]))
    batched = np.asarray(gen8(tiny_bundle.params, cond, uncond, keys))
    single = np.concatenate([np.asarray(gen1(tiny_bundle.params, cond, uncond, keys[i:i + 1]))
                             for i in (0, 5)])
    assert batched.shape == (8, 4, 8, 8)
    np.testing.assert_allclose(batched[[0, 5]], single, rtol=1e-5, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])
    assert np.all(np.isfinite(batched))


def test_shared_noise_correlates_the_starts_and_keeps_unit_variance(tiny_bundle):
    """rho of the start is one shared noise image: samples correlate by rho, variance stays 1."""
    import dataclasses

    import jax.numpy as jnp

    from jaxsteer.sampling import generate

    @dataclasses.dataclass(frozen=True)
    class ZeroEps:  # eps = 0: one DDIM step returns x_T / sqrt(alpha), a copy of the start
        latent_shape = (1, 32, 32)
        schedule = tiny_bundle.model.schedule

        def predict(self, params, x, t, cond):
            return jnp.zeros_like(x)

    model = ZeroEps()
    sched = SamplerConfig(steps=1).schedule(model)
    keys = jax.random.split(jax.random.key(0), 6)

    def starts(rho):
        x = generate(model, None, None, None, keys, sched, jnp.float32(0.0), shared_noise=rho)
        return np.asarray(x).reshape(6, -1) * np.sqrt(float(sched.alpha_s[0]))

    for rho in (0.0, 0.9):
        x = starts(rho)
        corr = np.corrcoef(x)[np.triu_indices(6, 1)]
        assert abs(corr.mean() - rho) < 0.08, (rho, corr)
        assert abs(x.std() - 1.0) < 0.1


def _scaled_eps_model(scheduler: dict | None = None):
    """eps = params["c"] * x on 1 x 4 x 4 latents, under ``scheduler`` (a diffusers scheduler
    config; default: the shapes model's)."""
    import dataclasses

    import jax.numpy as jnp

    from jaxsteer.models.base import schedule_from_config
    from jaxsteer.shapes.model import SCHEDULER

    @dataclasses.dataclass(frozen=True)
    class ScaledEps:
        latent_shape = (1, 4, 4)
        schedule = schedule_from_config(scheduler or SCHEDULER)

        def predict(self, params, x, t, cond):
            return params["c"] * x

    return ScaledEps(), jnp


def test_handoff_runs_the_base_for_the_first_steps_and_the_model_after():
    """Diversity distillation against a plain loop: the base's eps for the first k steps, the
    model's after, the same start and (LCM) the same fresh noise at every step index."""
    import jax.numpy as jnp

    from jaxsteer.sampling import generate, generate_handoff, initial_noise

    model, _ = _scaled_eps_model()
    keys = jax.random.split(jax.random.key(1), 3)
    mine, base = {"c": jnp.float32(0.3)}, {"c": jnp.float32(-0.2)}
    for scheduler in ("ddim", "lcm"):
        sched = SamplerConfig(steps=3, scheduler=scheduler).schedule(model)
        for k in (1, 2):
            got = generate_handoff(model, mine, None, None, jnp.float32(0), model, base, None,
                                   None, jnp.float32(0), keys, sched, k)
            x = initial_noise(model, keys)
            for i in range(3):
                c = (base if i < k else mine)["c"]
                a, a_next = sched.alpha_s[i], sched.alpha_next_s[i]
                eps = c * x
                x0 = (x - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
                if scheduler == "lcm":
                    eps = jax.vmap(lambda kk, i=i: jax.random.normal(
                        jax.random.fold_in(jax.random.fold_in(kk, 1), i), (1, 4, 4)))(keys)
                x = jnp.sqrt(a_next) * x0 + jnp.sqrt(1 - a_next) * eps
            np.testing.assert_allclose(np.asarray(got), np.asarray(x0), rtol=1e-5, atol=1e-6)
            # the base being the model itself: the plain run (to rounding: two loops, not one)
            same = generate_handoff(model, mine, None, None, jnp.float32(0), model, mine, None,
                                    None, jnp.float32(0), keys, sched, k)
            plain = generate(model, mine, None, None, keys, sched, jnp.float32(0))
            np.testing.assert_allclose(np.asarray(same), np.asarray(plain), rtol=1e-6)
    from jaxsteer.errors import UserError
    with pytest.raises(UserError, match="splits after"):
        generate_handoff(model, mine, None, None, jnp.float32(0), model, base, None, None,
                         jnp.float32(0), keys, sched, 3)


@pytest.mark.parametrize("alpha_to_one", [False, True])
def test_a_ddim_sample_is_the_state_after_the_last_step_as_in_diffusers(alpha_to_one):
    """diffusers' DDIM loop written out (x_prev = sqrt(a') x0 + sqrt(1 - a') eps, a' the next
    alphas_cumprod, at the end alphas_cumprod[0] for SD's set_alpha_to_one false, else 1):
    the sample is its last x_prev, not its last x0, which differ unless the schedule ends at 1."""
    import jax.numpy as jnp

    from jaxsteer.sampling import generate, initial_noise

    sd = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
          "beta_end": 0.012, "prediction_type": "epsilon", "set_alpha_to_one": alpha_to_one,
          "steps_offset": 1, "timestep_spacing": "leading"}
    model, _ = _scaled_eps_model(sd)
    keys = jax.random.split(jax.random.key(2), 2)
    params = {"c": jnp.float32(0.3)}
    sched = SamplerConfig(steps=4, scheduler="ddim").schedule(model)
    ac = np.asarray(model.schedule.alphas_cumprod, np.float64)
    t_s = [int(t) for t in np.asarray(sched.t_s)]
    assert t_s == [751, 501, 251, 1]
    x = np.asarray(initial_noise(model, keys), np.float64)
    for i, t in enumerate(t_s):
        a = ac[t]
        a_next = ac[t_s[i + 1]] if i + 1 < 4 else (1.0 if alpha_to_one else ac[0])
        eps = 0.3 * x
        x0 = (x - np.sqrt(1 - a) * eps) / np.sqrt(a)
        x = np.sqrt(a_next) * x0 + np.sqrt(1 - a_next) * eps
    got = np.asarray(generate(model, params, None, None, keys, sched, jnp.float32(0)))
    np.testing.assert_allclose(got, x, rtol=1e-5, atol=1e-6)
    if not alpha_to_one:
        assert np.abs(x - x0).max() > 1e-2   # the last x0 would be another sample
