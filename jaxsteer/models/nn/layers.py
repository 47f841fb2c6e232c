"""Building blocks shared by the UNet and the autoencoder (channels-last, NHWC, inside).

Axis letters: b batch, t query tokens, s key tokens, h heads, d head dim, c channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsteer.models.attention import attend
from jaxsteer.models.nn import fused

# (q [b, t, h, d], k [b, s, h, d], v [b, s, h, d], scale) -> [b, t, h, d]
AttentionFn = Callable[[jax.Array, jax.Array, jax.Array, float], jax.Array]


def einsum_attention(q_bthd: jax.Array, k_bshd: jax.Array, v_bshd: jax.Array,
                     scale: float) -> jax.Array:
    """Attention as diffusers' Flax port computes it: two einsums, softmax in the input dtype."""
    scores_bhts = jnp.einsum("bthd,bshd->bhts", q_bthd, k_bshd) * scale
    return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores_bhts, axis=-1), v_bshd)


def attention_fn(kind: str | AttentionFn) -> AttentionFn:
    """The attention kernel of a module's ``attention`` field.

    ``diffusers`` (alias ``einsum``): the einsum form above;
    ``xla``: ``jax.nn.dot_product_attention``
    (float32 softmax); ``cudnn``: cuDNN flash attention, keys padded to a multiple of 64 and
    masked (the 77-token cross-attention); ``auto``: cudnn on NVIDIA GPUs in bf16/fp16, else xla
    (``models.attention.attend`` holds the rules). A callable is used as it is.
    """
    if callable(kind):
        return kind
    if kind in ("diffusers", "einsum"):
        return einsum_attention

    if kind not in ("xla", "cudnn", "auto"):
        raise ValueError(f"unknown attention kernel {kind!r}: use diffusers, xla, cudnn or auto")
    return lambda q, k, v, scale: attend(q, k, v, scale, kind)


def remat_class(cls: type[nn.Module], remat: str) -> type[nn.Module]:
    """``cls`` under ``nn.remat`` when the remat option is ``blocks``, else ``cls``."""
    return nn.remat(cls) if remat == "blocks" else cls


def timestep_embedding(t_b: jax.Array, dim: int, flip_sin_to_cos: bool,
                       freq_shift: float) -> jax.Array:
    """Sinusoidal embedding [b, dim] of (float) timesteps, as diffusers' ``Timesteps``."""
    half = dim // 2
    exponent = -math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - freq_shift)
    arg_bf = t_b.astype(jnp.float32)[:, None] * jnp.exp(exponent)[None, :]
    sin, cos = jnp.sin(arg_bf), jnp.cos(arg_bf)
    return jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)


class TimestepEmbedding(nn.Module):
    """linear_1 -> SiLU -> linear_2."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(self.features, dtype=self.dtype, name="linear_1")(x)
        return nn.Dense(self.features, dtype=self.dtype, name="linear_2")(nn.silu(x))


def conv(features: int, kernel: int = 3, stride: int = 1, dtype: Any = jnp.float32,
         name: str | None = None, padding: Any = None) -> nn.Conv:
    pad = ((kernel // 2, kernel // 2),) * 2 if padding is None else padding
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=pad, dtype=dtype,
                   name=name)


class GroupNorm(nn.Module):
    """flax's ``nn.GroupNorm`` (same parameters: scale, bias [c]) as `fused.group_norm`, with the
    SiLU that follows it (``silu``) and a per-channel ``shift [b, c]`` added before it."""

    num_groups: int = 32
    epsilon: float = 1e-5
    silu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, shift: jax.Array | None = None) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        return fused.group_norm(x, scale, bias, groups=self.num_groups, eps=self.epsilon,
                                silu=self.silu, shift=shift)


class LayerNorm(nn.Module):
    """flax's ``nn.LayerNorm`` (same parameters) as `fused.layer_norm`, in the input's dtype."""

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        return fused.layer_norm(x, scale, bias, eps=self.epsilon)


class ResnetBlock2D(nn.Module):
    """GroupNorm-SiLU-conv twice, plus the time embedding (UNet) and a 1x1 shortcut when the
    channel count changes. ``x [b, h, w, c]``, ``temb [b, e]`` or None (autoencoder)."""

    out_channels: int
    groups: int = 32
    eps: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, temb: jax.Array | None = None) -> jax.Array:
        h = GroupNorm(self.groups, self.eps, silu=True, name="norm1")(x)
        h = conv(self.out_channels, dtype=self.dtype, name="conv1")(h)
        t = None
        if temb is not None:  # added inside the next norm's fusion, not as its own pass
            t = nn.Dense(self.out_channels, dtype=self.dtype, name="time_emb_proj")(nn.silu(temb))
        h = GroupNorm(self.groups, self.eps, silu=True, name="norm2")(h, t)
        h = conv(self.out_channels, dtype=self.dtype, name="conv2")(h)
        if x.shape[-1] != self.out_channels:
            x = conv(self.out_channels, 1, dtype=self.dtype, name="conv_shortcut",
                     padding="VALID")(x)
        return h + x


class Downsample2D(nn.Module):
    """Stride-2 3x3 conv. The UNet pads 1 on every side; the autoencoder pads only bottom and
    right (``asymmetric``), as its PyTorch original does."""

    out_channels: int
    asymmetric: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.asymmetric:
            x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
            return conv(self.out_channels, 3, 2, self.dtype, "conv", padding="VALID")(x)
        return conv(self.out_channels, 3, 2, self.dtype, "conv")(x)


class Upsample2D(nn.Module):
    """Nearest-neighbour 2x upsampling, then a 3x3 conv."""

    out_channels: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return conv(self.out_channels, dtype=self.dtype, name="conv")(x)
