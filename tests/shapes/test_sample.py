"""`jaxsteer.shapes.sample`: the DDIM schedule and update, by hand, with stand-in networks."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.shapes.sample import _ddim, ddim_schedule


def test_trailing_schedule_by_hand():
    a = np.linspace(0.99, 0.01, 1000)
    t, alpha, nxt = ddim_schedule(a, 4)
    assert t.tolist() == [999, 749, 499, 249] and t.dtype == np.int32
    np.testing.assert_allclose(alpha, a[[999, 749, 499, 249]], rtol=1e-6)
    np.testing.assert_allclose(nxt, [a[749], a[499], a[249], 1.0], rtol=1e-6)  # ends clean
    assert ddim_schedule(a, 1)[0].tolist() == [999]


PARAMS = {"text_encoder": {}, "unet": {}}   # the stand-ins hold no weights


class _Text:
    def apply(self, params, ids, mask, pos):
        return SimpleNamespace(last_hidden_state=ids[..., None].astype(jnp.float32))


class _Unet:
    def apply(self, params, x, t, emb):                # eps = the caption's first id
        return jnp.broadcast_to(emb[:, 0, 0][:, None, None, None], x.shape)


def test_one_step_with_guidance_is_the_clean_estimate():
    x = jnp.full((2, 1, 2, 2), 2.0)
    ids = jnp.asarray([[3, 0], [5, 0]])
    uncond = jnp.asarray([1, 0])
    a, w = 0.25, 2.0
    out = jax.jit(_ddim, static_argnums=(0, 1))(
        _Unet(), _Text(), PARAMS, ids, uncond, x, jnp.asarray([999]), jnp.asarray([a]),
        jnp.asarray([1.0]), jnp.float32(w))
    eps = 1 + w * (np.array([3.0, 5.0]) - 1)            # uncond + w (cond - uncond)
    want = (2.0 - np.sqrt(1 - a) * eps) / np.sqrt(a)    # x0, as alpha_next is 1
    np.testing.assert_allclose(np.asarray(out)[:, 0, 0, 0], want, rtol=1e-6)


def test_zero_noise_prediction_rescales_by_the_alphas_only():
    class Zero:
        def apply(self, params, x, t, emb):
            return jnp.zeros_like(x)

    x = jnp.ones((1, 1, 1, 1))
    alpha = jnp.asarray([0.04, 0.25, 0.64])
    nxt = jnp.asarray([0.25, 0.64, 1.0])
    out = _ddim(Zero(), _Text(), PARAMS, jnp.asarray([[1]]), jnp.asarray([1]), x,
                jnp.asarray([9, 6, 3]), alpha, nxt, jnp.float32(3.0))
    # Each step multiplies by sqrt(a_next / a): the product telescopes to 1 / sqrt(0.04) = 5.
    np.testing.assert_allclose(float(out[0, 0, 0, 0]), 5.0, rtol=1e-6)
