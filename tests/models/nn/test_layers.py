"""`jaxsteer.models.nn.layers`: attention, the timestep embedding and the resampling blocks,
against hand computations in numpy (weights set by hand: no module init is compiled)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn.layers import (
    Downsample2D,
    Upsample2D,
    attention_fn,
    einsum_attention,
    timestep_embedding,
)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_einsum_attention_is_softmax_of_scaled_scores_times_values():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float32)
               for s in ((2, 3, 2, 4), (2, 5, 2, 4), (2, 5, 2, 4)))
    got = np.asarray(jax.jit(einsum_attention, static_argnums=3)(q, k, v, 0.5))
    want = np.zeros((2, 3, 2, 4), np.float32)
    for b in range(2):
        for h in range(2):
            p = _softmax(0.5 * q[b, :, h] @ k[b, :, h].T)       # [t, s]
            want[b, :, h] = p @ v[b, :, h]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # xla attention computes the same function.
    xla = jax.jit(attention_fn("xla"), static_argnums=3)(q, k, v, 0.5)
    np.testing.assert_allclose(np.asarray(xla), want, rtol=1e-5, atol=1e-6)


def test_attention_fn_names():
    assert attention_fn("diffusers") is einsum_attention is attention_fn("einsum")
    custom = lambda q, k, v, s: q  # noqa: E731
    assert attention_fn(custom) is custom
    with pytest.raises(ValueError, match="unknown attention kernel 'flash'"):
        attention_fn("flash")


def test_timestep_embedding_by_hand():
    t = jnp.asarray([0.0, 10.0])
    emb = jax.jit(timestep_embedding, static_argnums=(1, 2, 3))
    got = np.asarray(emb(t, 4, False, 1.0))
    # half = 2, exponent = -ln(1e4) * [0, 1] / (2 - 1): frequencies 1 and 1e-4.
    freqs = np.array([1.0, 1e-4])
    arg = np.array([0.0, 10.0])[:, None] * freqs
    np.testing.assert_allclose(got, np.concatenate([np.sin(arg), np.cos(arg)], 1), rtol=1e-6,
                               atol=1e-7)
    flipped = np.asarray(emb(t, 4, True, 1.0))
    np.testing.assert_array_equal(flipped, np.concatenate([got[:, 2:], got[:, :2]], 1))
    assert jax.eval_shape(emb, jnp.zeros(3, jnp.int32), 6, True, 0.0).dtype == jnp.float32


def test_upsample_repeats_each_pixel_into_a_two_by_two_block():
    x = jnp.arange(2 * 2 * 3 * 1, dtype=jnp.float32).reshape(2, 2, 3, 1)
    # With a centre-tap identity kernel the conv passes the nearest-neighbour upsampling through.
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1] = 1.0
    params = {"conv": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(1)}}
    out = np.asarray(jax.jit(Upsample2D(1).apply)({"params": params}, x))
    assert out.shape == (2, 4, 6, 1)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(np.asarray(x), 2, 1), 2, 2))


@pytest.mark.parametrize("asymmetric", [False, True])
def test_downsample_halves_the_sides_and_pads_as_told(asymmetric):
    x = jnp.ones((1, 4, 4, 1))
    # Ones through an all-ones kernel count the unpadded pixels each output sees: symmetric
    # padding cuts the top-left window, the autoencoder's bottom/right padding none of it there.
    ones = {"conv": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.zeros(2)}}
    got = np.asarray(jax.jit(Downsample2D(2, asymmetric=asymmetric).apply)({"params": ones}, x))
    assert got.shape == (1, 2, 2, 2)
    want = np.array([[9.0, 6.0], [6.0, 4.0]]) if asymmetric else np.array([[4.0, 6.0],
                                                                           [6.0, 9.0]])
    np.testing.assert_array_equal(got[0, :, :, 0], want)
    np.testing.assert_array_equal(got[0, :, :, 1], want)
