"""The fused norms and GEGLU (models/nn/fused.py) against the plain flax / jnp versions they
replace: values and gradients in float32, finite differences in float64, bf16 near float32, and
the same parameter trees."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxsteer.models.nn import fused
from jaxsteer.models.nn.layers import GroupNorm, LayerNorm


def _rand(rng, *shape, loc=0.0, dtype=jnp.float32):
    return jnp.asarray(loc + rng.standard_normal(shape), dtype)


def _plain_group_norm(x, scale, bias, shift, groups, silu):
    x = x + shift[:, None, None, :]
    y = nn.GroupNorm(num_groups=groups, epsilon=1e-5).apply(
        {"params": {"scale": scale, "bias": bias}}, x)
    return nn.silu(y) if silu else y


def _value_and_grads(f, args, w):
    # jitted: one compile per function instead of one per eager op
    return jax.jit(jax.value_and_grad(lambda *a: jnp.sum(f(*a) * w),
                                      argnums=tuple(range(len(args)))))(*args)


@pytest.mark.parametrize("silu", [False, True])
def test_group_norm_matches_flax(silu):
    rng = np.random.default_rng(int(silu))
    x = _rand(rng, 2, 4, 3, 32, loc=0.7)   # a nonzero mean, as activations have
    args = (x, _rand(rng, 32), _rand(rng, 32), _rand(rng, 2, 32))
    w = _rand(rng, *x.shape)
    ref = _value_and_grads(lambda *a: _plain_group_norm(*a, 8, silu), args, w)
    out = _value_and_grads(lambda x, s, b, t: fused.group_norm(
        x, s, b, groups=8, eps=1e-5, silu=silu, shift=t), args, w)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-5)
    for got, want in zip(out[1], ref[1], strict=True):   # x, scale, bias, shift
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_layer_norm_matches_flax():
    rng = np.random.default_rng(2)
    args = (_rand(rng, 2, 5, 24, loc=-1.3), _rand(rng, 24), _rand(rng, 24))
    w = _rand(rng, 2, 5, 24)
    ref = _value_and_grads(lambda x, s, b: nn.LayerNorm(epsilon=1e-5).apply(
        {"params": {"scale": s, "bias": b}}, x), args, w)
    out = _value_and_grads(lambda x, s, b: fused.layer_norm(x, s, b, eps=1e-5), args, w)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-5)
    for got, want in zip(out[1], ref[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("approximate", [False, True])
def test_geglu_matches_plain(approximate):
    rng = np.random.default_rng(3 + int(approximate))
    h = _rand(rng, 3, 5, 16) * 2
    w = _rand(rng, 3, 5, 8)

    def plain(h):
        value, gate = jnp.split(h, 2, axis=-1)
        return value * nn.gelu(gate, approximate=approximate)

    ref = _value_and_grads(plain, (h,), w)
    out = _value_and_grads(lambda h: fused.geglu(h, approximate), (h,), w)
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(out[1][0], ref[1][0], rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences_in_float64():
    """(Layer norm runs the same custom VJP with one group per row.)"""
    with jax.enable_x64(True):
        rng = np.random.default_rng(5)
        f64 = functools.partial(_rand, rng, dtype=jnp.float64)
        norm = functools.partial(fused.group_norm, groups=4, eps=1e-5, silu=True)
        check_grads(jax.jit(lambda x, s, b, t: norm(x, s, b, shift=t)),
                    (f64(2, 3, 3, 8, loc=0.5), f64(8), f64(8), f64(2, 8)), order=1,
                    modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)
        check_grads(jax.jit(fused.geglu), (f64(4, 10),), order=1, modes=["rev"], eps=1e-6,
                    atol=1e-6, rtol=1e-6)


def test_bf16_is_bf16_in_and_out_and_near_float32():
    rng = np.random.default_rng(6)
    x = _rand(rng, 2, 8, 8, 64, loc=0.3)
    scale, bias, shift = _rand(rng, 64), _rand(rng, 64), _rand(rng, 2, 64)
    w = _rand(rng, *x.shape)

    def run(dtype):
        def f(x, t):
            return fused.group_norm(x, scale.astype(dtype), bias.astype(dtype), groups=32,
                                    eps=1e-5, silu=True, shift=t)
        @jax.jit
        def y_and_vjp(x, t, w):
            y, vjp = jax.vjp(f, x, t)
            return y, vjp(w)

        return y_and_vjp(x.astype(dtype), shift.astype(dtype), w.astype(dtype))

    (y16, g16), (y32, g32) = run(jnp.bfloat16), run(jnp.float32)
    assert y16.dtype == g16[0].dtype == jnp.bfloat16
    for got, want in ((y16, y32), *zip(g16, g32, strict=True)):
        got, want = np.asarray(got, np.float32), np.asarray(want)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-2


def test_modules_have_flax_parameter_trees():
    x = jnp.zeros((1, 4, 4, 16))
    for ours, theirs in ((GroupNorm(8, 1e-6, silu=True), nn.GroupNorm(num_groups=8)),
                         (LayerNorm(1e-5), nn.LayerNorm())):
        a = jax.eval_shape(ours.init, jax.random.key(0), x)
        b = jax.eval_shape(theirs.init, jax.random.key(0), x)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        assert jax.tree.map(lambda s: (s.shape, s.dtype), a) == jax.tree.map(
            lambda s: (s.shape, s.dtype), b)


def test_backward_keeps_only_the_input():
    """What the VJP closes over (its residuals): the bf16 input and per-group statistics, where
    flax's GroupNorm + SiLU keeps two float32 and three bf16 copies (7x the input)."""
    rng = np.random.default_rng(7)
    x = _rand(rng, 2, 16, 16, 64, dtype=jnp.bfloat16)
    scale, bias = jnp.ones(64, jnp.bfloat16), jnp.zeros(64, jnp.bfloat16)
    shift = _rand(rng, 2, 64, dtype=jnp.bfloat16)

    def residual_bytes(f, *args):   # traced only (eval_shape): shapes, no compute
        leaves = jax.tree.leaves(jax.eval_shape(lambda *a: jax.vjp(f, *a)[1], *args))
        return sum(np.prod(a.shape) * a.dtype.itemsize for a in leaves if hasattr(a, "dtype"))

    size = x.size * x.dtype.itemsize
    fused_gn = residual_bytes(lambda x, t: fused.group_norm(x, scale, bias, groups=32, eps=1e-5,
                                                            silu=True, shift=t), x, shift)
    plain_gn = residual_bytes(lambda x: nn.silu(nn.GroupNorm(num_groups=32).apply(
        {"params": {"scale": scale, "bias": bias}}, x)), x)
    assert fused_gn < 1.05 * size < 4 * size < plain_gn
    assert residual_bytes(fused.geglu, x) == size
