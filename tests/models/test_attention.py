"""The UNet attention replacements: padded (masked) keys change nothing, remat policies neither."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models import architectures
from jaxsteer.models.attention import attend, padded_attention
from jaxsteer.models.remat import save_matmuls


def _qkv(t=64, s=77, h=2, d=8):
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    return (jax.random.normal(kq, (2, t, h, d)), jax.random.normal(kk, (2, s, h, d)),
            jax.random.normal(kv, (2, s, h, d)))


def test_padded_keys_give_the_same_attention_and_gradients():
    """77 keys padded to 128 and masked (what cuDNN gets) == plain attention, values and grads."""
    q, k, v = _qkv()
    w = jax.random.normal(jax.random.key(1), (2, 64, 2, 8))

    def loss(fn, q, k, v):
        return jnp.sum(fn(q, k, v) * w)

    plain = lambda q, k, v: attend(q, k, v, 0.3, "xla")  # noqa: E731
    padded = lambda q, k, v: padded_attention(q, k, v, 0.3, "xla", 128)  # noqa: E731
    np.testing.assert_allclose(padded(q, k, v), plain(q, k, v), rtol=1e-5, atol=1e-5)
    g_plain = jax.grad(loss, (1, 2, 3))(plain, q, k, v)
    g_pad = jax.grad(loss, (1, 2, 3))(padded, q, k, v)
    for a, b in zip(g_pad, g_plain):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # A padding key that were not masked would take weight: the mask is what makes them equal.
    unmasked = jax.nn.dot_product_attention(
        q, jnp.pad(k, ((0, 0), (0, 51), (0, 0), (0, 0))),
        jnp.pad(v, ((0, 0), (0, 51), (0, 0), (0, 0))), scale=0.3)
    assert not np.allclose(unmasked, plain(q, k, v), atol=1e-3)


def test_auto_on_cpu_is_plain_xla_attention():
    q, k, v = _qkv()
    np.testing.assert_allclose(attend(q, k, v, 0.3, "auto"), attend(q, k, v, 0.3, "xla"),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("policy", ["matmuls", "dots", "full"])
def test_remat_policies_keep_the_gradient(policy):
    """Remat changes what is stored, never the numbers: tiny UNet, d out / d text embedding."""
    base = architectures.build("tiny", dtype="float32", attention="xla")
    remat = architectures.build("tiny", dtype="float32", attention="xla", remat_policy=policy,
                                params=base.params)
    cond = architectures.random_cond("tiny")
    x = jax.random.normal(jax.random.key(2), (2, *base.model.latent_shape))
    t = jnp.array([999, 500])

    def grad(bundle):
        def loss(emb):
            c = cond.replace(emb=jnp.broadcast_to(emb, (2, *emb.shape)))
            return jnp.sum(jnp.square(bundle.model.predict(bundle.params, x, t, c)))
        return jax.jit(jax.grad(loss))(cond.emb)

    np.testing.assert_allclose(grad(remat), grad(base), rtol=1e-4, atol=1e-6)


def test_save_matmuls_keeps_conv_and_dot_outputs_only():
    from jax._src.ad_checkpoint import saved_residuals

    def f(x, w, m):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME")   # saved
        z = jax.nn.silu(y * 2.0)                                  # recomputed
        return jnp.sum(jnp.tanh(z.reshape(2, -1) @ m))            # dot saved

    x, w = jnp.ones((2, 3, 8, 8)), jnp.ones((4, 3, 3, 3))
    m = jnp.ones((4 * 64, 5))
    f_remat = jax.checkpoint(f, policy=save_matmuls)
    res = [(tuple(aval.shape), why) for aval, why in saved_residuals(f_remat, x, w, m)]
    shapes = {s for s, _ in res}
    assert (2, 4, 8, 8) in shapes and (2, 5) in shapes, res
    # without remat the SiLU's input/output are kept too: the policy stores strictly less
    assert len(saved_residuals(f, x, w, m)) > len(res)
