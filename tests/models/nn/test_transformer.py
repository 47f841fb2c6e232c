"""`jaxsteer.models.nn.transformer`: a scanned stack of blocks is the unrolled stack, and the
attention module is multi-head attention over its projections (checked in numpy)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.models.nn.transformer import Attention, Transformer2DModel
from jaxsteer.models.tiny import random_params


def test_a_scanned_stack_computes_what_the_unrolled_stack_does():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((1, 2, 2, 16)), jnp.float32)
    ctx = jnp.asarray(rng.standard_normal((1, 3, 8)), jnp.float32)
    kw = dict(heads=2, depth=3, groups=4, use_linear_projection=True, attention="xla")
    scanned, unrolled = Transformer2DModel(**kw, scan=True), Transformer2DModel(**kw, scan=False)
    params = random_params(lambda k: scanned.init(k, x, ctx)["params"], jax.random.key(0), 1)
    # One entry per block, as diffusers names them, whichever way the stack runs.
    assert {f"transformer_blocks_{i}" for i in range(3)} <= set(params)
    a = jax.jit(scanned.apply)({"params": params}, x, ctx)
    b = jax.jit(unrolled.apply)({"params": params}, x, ctx)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    assert a.shape == x.shape and not np.allclose(np.asarray(a), np.asarray(x))


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_attention_projects_attends_per_head_and_projects_out():
    rng = np.random.default_rng(1)
    heads, dh, c, e = 2, 3, 4, 5
    x = rng.standard_normal((1, 4, c)).astype(np.float32)
    ctx = rng.standard_normal((1, 2, e)).astype(np.float32)
    p = {"to_q": {"kernel": rng.standard_normal((c, heads * dh))},
         "to_k": {"kernel": rng.standard_normal((e, heads * dh))},
         "to_v": {"kernel": rng.standard_normal((e, heads * dh))},
         "to_out_0": {"kernel": rng.standard_normal((heads * dh, c)),
                      "bias": rng.standard_normal(c)}}
    p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p)
    got = jax.jit(Attention(heads, dh, attention="diffusers").apply)({"params": p}, x, ctx)
    q = (x[0] @ np.asarray(p["to_q"]["kernel"])).reshape(4, heads, dh)
    k = (ctx[0] @ np.asarray(p["to_k"]["kernel"])).reshape(2, heads, dh)
    v = (ctx[0] @ np.asarray(p["to_v"]["kernel"])).reshape(2, heads, dh)
    out = np.stack([_softmax(q[:, h] @ k[:, h].T / np.sqrt(dh)) @ v[:, h] for h in range(heads)],
                   axis=1).reshape(4, heads * dh)
    want = out @ np.asarray(p["to_out_0"]["kernel"]) + np.asarray(p["to_out_0"]["bias"])
    np.testing.assert_allclose(np.asarray(got)[0], want, rtol=1e-4, atol=1e-5)
