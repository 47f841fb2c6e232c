import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.base import schedule_from_config
from jaxsteer.models.schedulers import make_schedule, timesteps, to_x0_eps

SD_CFG = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
          "beta_end": 0.012, "prediction_type": "epsilon", "set_alpha_to_one": False,
          "steps_offset": 1, "timestep_spacing": "leading"}


def test_leading_timesteps_and_alphas_are_sd_ddims():
    # diffusers' DDIM on SD's config, written out: "leading" spacing 1000 // 50 = 20 apart,
    # offset 1; alphas_cumprod from betas linear in sqrt(beta) (scaled_linear)
    noise = schedule_from_config(SD_CFG)
    np.testing.assert_array_equal(timesteps(noise, 50), np.arange(980, -1, -20) + 1)
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    np.testing.assert_allclose(noise.alphas_cumprod, np.cumprod(1.0 - betas), rtol=1e-6)


def test_leading_timesteps_and_alphas_match_diffusers_ddim():
    diffusers = pytest.importorskip("diffusers")   # the flax-reference extra (diffusers <= 0.39)
    if not hasattr(diffusers, "FlaxDDIMScheduler"):
        pytest.skip("diffusers without Flax classes (removed in 0.40)")
    FlaxDDIMScheduler = diffusers.FlaxDDIMScheduler
    sched = FlaxDDIMScheduler.from_config(SD_CFG)
    state = sched.set_timesteps(sched.create_state(), 50)
    noise = schedule_from_config(SD_CFG)
    np.testing.assert_array_equal(timesteps(noise, 50), np.asarray(state.timesteps))
    np.testing.assert_allclose(noise.alphas_cumprod, np.asarray(state.common.alphas_cumprod),
                               rtol=1e-6)


def test_trailing_spacing_gives_the_turbo_and_dmd2_timesteps():
    noise = schedule_from_config(SD_CFG | {"timestep_spacing": "trailing"})
    assert timesteps(noise, 4).tolist() == [999, 749, 499, 249]
    assert timesteps(noise, 1).tolist() == [999]


def test_final_alpha_and_start_timestep():
    noise = schedule_from_config(SD_CFG)
    ddim = make_schedule(noise, 4, "ddim")
    euler = make_schedule(noise, 4, "euler")
    assert float(ddim.alpha_next_s[-1]) == pytest.approx(noise.alphas_cumprod[0])
    assert float(euler.alpha_next_s[-1]) == 1.0
    s = make_schedule(noise, 4, "ddim", start_timestep=600)
    assert np.asarray(s.t_s).tolist() == [600, 501, 251, 1]
    assert make_schedule(noise, 4, "lcm").renoise
    with pytest.raises(UserError, match="timestep"):
        make_schedule(noise, 4, start_timestep=1000)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_model_output_conversions_invert_the_forward_process(kind):
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    alpha = jnp.float32(0.3)
    x = np.sqrt(0.3) * x0 + np.sqrt(0.7) * eps
    out = {"epsilon": eps, "v_prediction": np.sqrt(0.3) * eps - np.sqrt(0.7) * x0,
           "sample": x0}[kind]
    got_x0, got_eps = to_x0_eps(jnp.asarray(out, jnp.float32), jnp.asarray(x, jnp.float32),
                                alpha, kind)
    np.testing.assert_allclose(got_x0, x0, atol=1e-5)
    np.testing.assert_allclose(got_eps, eps, atol=1e-5)
