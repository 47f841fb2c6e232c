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


def _scaled_eps_model():
    """eps = params["c"] * x on 1 x 4 x 4 latents, under the shapes model's noise schedule."""
    import dataclasses

    import jax.numpy as jnp

    from jaxsteer.models.base import schedule_from_config
    from jaxsteer.shapes.model import SCHEDULER

    @dataclasses.dataclass(frozen=True)
    class ScaledEps:
        latent_shape = (1, 4, 4)
        schedule = schedule_from_config(SCHEDULER)

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
