"""The DMD objective (jaxsteer/distill/dmd.py) on planted data, and its settings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.distill.dmd import DMDConfig, StudentConfig, dmd_surrogate
from jaxsteer.errors import UserError


def test_surrogate_gradient_is_the_normalised_score_difference():
    rng = np.random.default_rng(0)
    x0, real, fake = (jnp.asarray(rng.standard_normal((3, 2, 4, 4))) for _ in range(3))
    got = jax.grad(dmd_surrogate)(x0, real, fake)
    weight = np.mean(np.abs(np.asarray(x0) - np.asarray(real)), axis=(1, 2, 3), keepdims=True)
    want = (np.asarray(fake) - np.asarray(real)) / weight / x0.size
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


def _gaussian_dmd(stale: bool) -> np.ndarray:
    """Planted: data N(m, 1) per pixel, a collapsed generator x0 = mu + s z (s = 0.3), the exact
    posterior-mean scores of the data (real) and of the generator (fake; ``stale``: a fake that
    still believes the generator's spread is 1) at noise level alpha; -> (mu, s) after descent."""
    m, alpha = 2.0, 0.5
    z = jax.random.normal(jax.random.key(0), (64, 1, 4, 4))
    noise = jax.random.normal(jax.random.key(1), z.shape)

    def loss(theta):
        x0 = theta[0] + theta[1] * z
        x_t = jnp.sqrt(alpha) * jax.lax.stop_gradient(x0) + jnp.sqrt(1 - alpha) * noise

        def posterior_mean(mean, var):   # E[x0 | x_t] for x0 ~ N(mean, var)
            return mean + jnp.sqrt(alpha) * var * (x_t - jnp.sqrt(alpha) * mean) / (
                alpha * var + 1 - alpha)
        seen = jax.lax.stop_gradient(theta)
        fake = posterior_mean(seen[0], 1.0 if stale else seen[1] ** 2)
        return dmd_surrogate(x0, posterior_mean(m, 1.0), fake)

    grad = jax.jit(jax.grad(loss))
    theta = jnp.asarray([-1.0, 0.3])
    for _ in range(300):
        theta = theta - 0.3 * grad(theta)
    return np.asarray(theta)


def test_dmd_matches_the_data_and_a_stale_fake_score_keeps_a_collapse():
    """Why the student is distilled without TTUR: DMD's only force against collapse is the fake
    score. Knowing the generator, it restores the spread; lagging behind, it leaves the collapse
    in place while the mean still moves to the data's."""
    np.testing.assert_allclose(_gaussian_dmd(stale=False), [2.0, 1.0], atol=1e-3)
    mu, s = _gaussian_dmd(stale=True)
    assert abs(mu - 2.0) < 1e-3 and s < 0.35


def test_hyperparameters_are_arrays_and_not_part_of_the_compiled_step():
    a, b = DMDConfig(lr=1e-5, real_guidance=3.0), DMDConfig(lr=1e-3, real_guidance=8.0)
    assert a.static() == b.static() and a.hyper()["lr"] != b.hyper()["lr"]
    assert DMDConfig(regression=1.0).static() != a.static()


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="t-min"):
        DMDConfig(t_min=500, t_max=400)
    with pytest.raises(UserError, match="student.steps"):
        StudentConfig(steps=0)
