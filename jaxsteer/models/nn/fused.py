"""The UNet's memory-bound work as custom VJPs that XLA fuses: group norm (+ SiLU, + a
per-channel shift: the time embedding), layer norm, and GEGLU.

Why: autodiff of flax's GroupNorm keeps float32 copies of its input (``x - mean`` and the cast)
for the backward pass, SiLU keeps its input as well, and the backward runs as a chain of small
reductions and elementwise passes over float32 tensors. Each function here keeps only what it
was given (a convolution's or a matmul's output: alive anyway) plus two float32 numbers per
(sample, group), and recomputes the normalised values inside the backward's fusions. Forward:
one reduction pass and one elementwise pass; backward: one reduction pass and one elementwise
pass; every pass reads the model's dtype (bf16) and computes in float32. Statistics are one pass
in float32 (E[x^2] - E[x]^2, as flax's ``use_fast_variance``).

The up blocks' skip concatenation stays a plain ``concatenate`` in front of these: the resnet's
1x1 shortcut convolution reads the concatenation, so it is written once whatever the norm does,
and normalising the parts separately would read the same bytes (and splitting the shortcut into
one matmul per part writes one more output than it saves).

Axis letters: b batch, n positions (h * w; 1 for layer norm), c channels, g groups.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def _f32(a: jax.Array) -> jax.Array:
    """At least float32 (bf16 -> float32; float64 stays, for finite-difference checks)."""
    return a.astype(jnp.promote_types(a.dtype, jnp.float32))


def _group_mean(s_bc: jax.Array, groups: int, n: int) -> jax.Array:
    """Per-channel sums over positions [b, c] -> [b, g] means of each group."""
    b, c = s_bc.shape
    return s_bc.reshape(b, groups, c // groups).sum(-1) / (n * (c // groups))


def _per_channel(a_bg: jax.Array, c: int) -> jax.Array:
    """[b, g] -> [b, 1, c]: each channel gets its group's value."""
    return jnp.repeat(a_bg, c // a_bg.shape[1], axis=1)[:, None, :]


def _input(x_bnc: jax.Array, shift_bc: jax.Array | None) -> jax.Array:
    x = _f32(x_bnc)
    return x if shift_bc is None else x + _f32(shift_bc)[:, None, :]


def _stats(x_bnc: jax.Array, groups: int, eps: float) -> tuple[jax.Array, jax.Array]:
    n = x_bnc.shape[1]
    mean = _group_mean(x_bnc.sum(1), groups, n)
    var = jnp.maximum(_group_mean(jnp.square(x_bnc).sum(1), groups, n) - jnp.square(mean), 0.0)
    return mean, jax.lax.rsqrt(var + eps)


def _silu_and_grad(h: jax.Array) -> tuple[jax.Array, jax.Array]:
    s = jax.nn.sigmoid(h)
    return h * s, s * (1.0 + h * (1.0 - s))


def _normalize(x_bnc, scale, bias, shift, groups, eps, silu):
    c = x_bnc.shape[-1]
    x = _input(x_bnc, shift)
    mean, rstd = _stats(x, groups, eps)
    y = (x - _per_channel(mean, c)) * (_per_channel(rstd, c) * _f32(scale)) + _f32(bias)
    if silu:
        y = _silu_and_grad(y)[0]
    return y.astype(x_bnc.dtype), (x_bnc, scale, bias, shift, mean, rstd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _norm(x_bnc: jax.Array, scale: jax.Array, bias: jax.Array, shift: jax.Array | None,
          groups: int, eps: float, silu: bool) -> jax.Array:
    return _normalize(x_bnc, scale, bias, shift, groups, eps, silu)[0]


def _norm_fwd(x_bnc, scale, bias, shift, groups, eps, silu):
    return _normalize(x_bnc, scale, bias, shift, groups, eps, silu)


def _norm_bwd(groups, eps, silu, res, dy):
    x_bnc, scale, bias, shift, mean, rstd = res
    n, c = x_bnc.shape[1:]
    rstd_c = _per_channel(rstd, c)
    xhat = (_input(x_bnc, shift) - _per_channel(mean, c)) * rstd_c
    dh = _f32(dy)
    if silu:
        dh = dh * _silu_and_grad(xhat * _f32(scale) + _f32(bias))[1]
    g = dh * _f32(scale)
    m1 = _per_channel(_group_mean(g.sum(1), groups, n), c)
    m2 = _per_channel(_group_mean((g * xhat).sum(1), groups, n), c)
    dx = rstd_c * (g - m1 - xhat * m2)
    # Unused by the collector's kernel (no weight or time gradients): XLA drops them.
    dscale = (dh * xhat).sum((0, 1)).astype(scale.dtype)
    dbias = dh.sum((0, 1)).astype(bias.dtype)
    dshift = None if shift is None else dx.sum(1).astype(shift.dtype)
    return dx.astype(x_bnc.dtype), dscale, dbias, dshift


_norm.defvjp(_norm_fwd, _norm_bwd)


def group_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, *, groups: int, eps: float,
               silu: bool = False, shift: jax.Array | None = None) -> jax.Array:
    """``silu?(GroupNorm(x + shift))`` of channels-last ``x [b, ..., c]``, in ``x``'s dtype.

    Args:
      scale, bias: [c].
      shift: [b, c], added at every position before the statistics (the UNet's time embedding).
    """
    b, c = x.shape[0], x.shape[-1]
    if c % groups:
        raise ValueError(f"group norm of {c} channels in {groups} groups")
    return _norm(x.reshape(b, -1, c), scale, bias, shift, groups, float(eps),
                 silu).reshape(x.shape)


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, *, eps: float) -> jax.Array:
    """LayerNorm over the last axis of ``x [..., c]`` (one group per row), in ``x``'s dtype."""
    flat = x.reshape(-1, 1, x.shape[-1])
    return _norm(flat, scale, bias, None, 1, float(eps), False).reshape(x.shape)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_and_grad(x: jax.Array, approximate: bool) -> tuple[jax.Array, jax.Array]:
    if approximate:  # jax.nn.gelu's tanh form
        t = jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
        return (0.5 * x * (1.0 + t),
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI
                * (1.0 + 3 * 0.044715 * x * x))
    cdf = 0.5 * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))
    return x * cdf, cdf + x * jnp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _geglu(h: jax.Array, approximate: bool) -> jax.Array:
    value, gate = jnp.split(_f32(h), 2, axis=-1)
    return (value * _gelu_and_grad(gate, approximate)[0]).astype(h.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def geglu(h: jax.Array, approximate: bool = False) -> jax.Array:
    """``value * gelu(gate)`` of ``h = [value, gate]`` (last axis, 2f -> f), in ``h``'s dtype;
    the backward keeps only ``h`` (a matmul output) and writes d h in one pass."""
    return _geglu(h, approximate)


def _geglu_fwd(h, approximate):
    return _geglu(h, approximate), h


def _geglu_bwd(approximate, h, dy):
    value, gate = jnp.split(_f32(h), 2, axis=-1)
    gelu, dgelu = _gelu_and_grad(gate, approximate)
    d = _f32(dy)
    return (jnp.concatenate([d * gelu, d * value * dgelu], axis=-1).astype(h.dtype),)


geglu.defvjp(_geglu_fwd, _geglu_bwd)
