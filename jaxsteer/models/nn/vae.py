"""AutoencoderKL (SD / SDXL VAE): encoder to a diagonal Gaussian over latents, and decoder.

Inputs and outputs are channels first (``[b, c, h, w]``) as in diffusers. The parameter tree
is diffusers' Flax tree (its mid-block attention is named query / key / value / proj_attn).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from jaxsteer.models.nn.layers import Downsample2D, GroupNorm, ResnetBlock2D, Upsample2D, conv


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    @classmethod
    def from_diffusers(cls, cfg: dict) -> VAEConfig:
        for key in ("down_block_types", "up_block_types"):
            kinds = set(cfg.get(key, ()))
            if kinds - {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
                raise ValueError(f"VAE {key} {sorted(kinds)} are not supported")
        if cfg.get("shift_factor") not in (None, 0, 0.0) or cfg.get("act_fn", "silu") != "silu":
            raise ValueError("VAE shift_factor / act_fn other than silu are not supported")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in cfg.items() if k in names and v is not None}
        if "block_out_channels" in kw:
            kw["block_out_channels"] = tuple(kw["block_out_channels"])
        return cls(**kw)


@flax.struct.dataclass
class DiagonalGaussian:
    mean: jax.Array  # [b, c, h, w]
    logvar: jax.Array  # [b, c, h, w], clipped to [-30, 20]

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(0.5 * self.logvar) * jax.random.normal(key, self.mean.shape)


class _SelfAttention(nn.Module):
    """Single-head self-attention over the spatial positions, with a residual."""

    groups: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_bhwc: jax.Array) -> jax.Array:
        b, h, w, c = x_bhwc.shape
        y = GroupNorm(self.groups, 1e-6, name="group_norm")(x_bhwc)
        y = y.reshape(b, h * w, 1, c)
        q, k, v = (nn.Dense(c, dtype=self.dtype, name=n)(y) for n in ("query", "key", "value"))
        out = jax.nn.dot_product_attention(q, k, v, scale=c ** -0.5).reshape(b, h * w, c)
        out = nn.Dense(c, dtype=self.dtype, name="proj_attn")(out)
        return out.reshape(b, h, w, c) + x_bhwc


class _MidBlock(nn.Module):
    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, g = self.cfg.block_out_channels[-1], self.cfg.norm_num_groups
        x = ResnetBlock2D(c, g, 1e-6, self.dtype, name="resnets_0")(x)
        if self.cfg.mid_block_add_attention:
            x = _SelfAttention(g, self.dtype, name="attentions_0")(x)
        return ResnetBlock2D(c, g, 1e-6, self.dtype, name="resnets_1")(x)


class _Encoder(nn.Module):
    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg, ch = self.cfg, self.cfg.block_out_channels
        x = conv(ch[0], dtype=self.dtype, name="conv_in")(x)
        for i, c in enumerate(ch):
            x = _EncoderBlock(c, cfg.layers_per_block, cfg.norm_num_groups, i < len(ch) - 1,
                              self.dtype, name=f"down_blocks_{i}")(x)
        x = _MidBlock(cfg, self.dtype, name="mid_block")(x)
        x = GroupNorm(cfg.norm_num_groups, 1e-6, silu=True, name="conv_norm_out")(x)
        return conv(2 * cfg.latent_channels, dtype=self.dtype, name="conv_out")(x)


class _Decoder(nn.Module):
    cfg: VAEConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        cfg, ch = self.cfg, tuple(reversed(self.cfg.block_out_channels))
        x = conv(ch[0], dtype=self.dtype, name="conv_in")(z)
        x = _MidBlock(cfg, self.dtype, name="mid_block")(x)
        for i, c in enumerate(ch):
            x = _DecoderBlock(c, cfg.layers_per_block + 1, cfg.norm_num_groups, i < len(ch) - 1,
                              self.dtype, name=f"up_blocks_{i}")(x)
        x = GroupNorm(cfg.norm_num_groups, 1e-6, silu=True, name="conv_norm_out")(x)
        return conv(cfg.out_channels, dtype=self.dtype, name="conv_out")(x)


class _EncoderBlock(nn.Module):
    out_channels: int
    num_layers: int
    groups: int
    downsample: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(self.num_layers):
            x = ResnetBlock2D(self.out_channels, self.groups, 1e-6, self.dtype,
                              name=f"resnets_{i}")(x)
        if self.downsample:
            x = Downsample2D(self.out_channels, True, self.dtype, name="downsamplers_0")(x)
        return x


class _DecoderBlock(nn.Module):
    out_channels: int
    num_layers: int
    groups: int
    upsample: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i in range(self.num_layers):
            x = ResnetBlock2D(self.out_channels, self.groups, 1e-6, self.dtype,
                              name=f"resnets_{i}")(x)
        if self.upsample:
            x = Upsample2D(self.out_channels, self.dtype, name="upsamplers_0")(x)
        return x


class AutoencoderKL(nn.Module):
    """``encode(images [b, 3, H, W]) -> DiagonalGaussian``, ``decode(z [b, 4, h, w]) -> images``.

    ``module.apply(variables, x, method="encode")``; ``__call__`` encodes and decodes the mean
    (it also initialises every parameter).
    """

    config: VAEConfig
    dtype: Any = jnp.float32

    def setup(self):
        cfg = self.config
        self.encoder = _Encoder(cfg, self.dtype)
        self.decoder = _Decoder(cfg, self.dtype)
        c = cfg.latent_channels
        if cfg.use_quant_conv:
            self.quant_conv = conv(2 * c, 1, dtype=self.dtype, padding="VALID")
        if cfg.use_post_quant_conv:
            self.post_quant_conv = conv(c, 1, dtype=self.dtype, padding="VALID")

    def encode(self, images_bchw: jax.Array) -> DiagonalGaussian:
        moments = self.encoder(jnp.transpose(images_bchw, (0, 2, 3, 1)))
        if self.config.use_quant_conv:
            moments = self.quant_conv(moments)
        mean, logvar = jnp.split(jnp.transpose(moments, (0, 3, 1, 2)), 2, axis=1)
        return DiagonalGaussian(mean=mean, logvar=jnp.clip(logvar, -30.0, 20.0))

    def decode(self, latents_bchw: jax.Array) -> jax.Array:
        z = jnp.transpose(latents_bchw, (0, 2, 3, 1))
        if self.config.use_post_quant_conv:
            z = self.post_quant_conv(z)
        return jnp.transpose(self.decoder(z), (0, 3, 1, 2))

    def init_weights(self, key: jax.Array, size: int = 32) -> dict:
        """Random parameters (use under ``jax.eval_shape`` for the tree's shapes)."""
        return self.init(key, jnp.zeros((1, self.config.in_channels, size, size)))["params"]

    def __call__(self, images_bchw: jax.Array) -> jax.Array:
        return self.decode(self.encode(images_bchw).mean)
