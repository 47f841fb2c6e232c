"""The Flux transformer (FLUX.1 [schnell] / [dev]): double-stream blocks with joint attention,
single-stream blocks, rotary position embeddings over (text, height, width) ids, modulation from
the timestep, the pooled CLIP vector and ([dev]) the distilled guidance.

Parameter names are diffusers' ``FluxTransformer2DModel`` names (``transformer_blocks_0/attn/
to_q/kernel`` for ``transformer_blocks.0.attn.to_q.weight``), so its PyTorch safetensors convert
with ``convert.pt_to_flax`` as they are. Latents enter packed: 2x2 patches of a [c, h, w]
latent become tokens of 4c channels (`pack` / `unpack`, as FluxPipeline packs them).

Axis letters: b batch, s image tokens, t text tokens, n all tokens, h heads, d head dim, e width.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsteer.models.nn.layers import (
    TimestepEmbedding,
    attention_fn,
    remat_class,
    timestep_embedding,
)
from jaxsteer.models.remat import checkpoint_policy


@dataclasses.dataclass(frozen=True)
class FluxConfig:
    patch_size: int = 1
    in_channels: int = 64
    out_channels: int | None = None
    num_layers: int = 19
    num_single_layers: int = 38
    attention_head_dim: int = 128
    num_attention_heads: int = 24
    joint_attention_dim: int = 4096
    pooled_projection_dim: int = 768
    guidance_embeds: bool = False
    axes_dims_rope: tuple[int, ...] = (16, 56, 56)

    @classmethod
    def from_diffusers(cls, cfg: dict) -> FluxConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in cfg.items() if k in names and v is not None}
        if "axes_dims_rope" in kw:
            kw["axes_dims_rope"] = tuple(kw["axes_dims_rope"])
        if kw.get("patch_size", 1) != 1:
            raise ValueError("Flux transformers with patch_size != 1 are not supported")
        return cls(**kw)

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


def pack(x_bchw: jax.Array) -> jax.Array:
    """[b, c, h, w] -> [b, (h/2)(w/2), 4c]: FluxPipeline's 2x2 packing (channel-major)."""
    b, c, h, w = x_bchw.shape
    x = x_bchw.reshape(b, c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(x_bsk: jax.Array, h: int, w: int) -> jax.Array:
    """The inverse of `pack` for a latent of height ``h`` and width ``w``."""
    b, _, k = x_bsk.shape
    x = x_bsk.reshape(b, h // 2, w // 2, k // 4, 2, 2).transpose(0, 3, 1, 4, 2, 5)
    return x.reshape(b, k // 4, h, w)


def image_ids(h: int, w: int) -> jax.Array:
    """[(h/2)(w/2), 3] position ids of the packed latent tokens: (0, row, column)."""
    rows, cols = jnp.meshgrid(jnp.arange(h // 2), jnp.arange(w // 2), indexing="ij")
    return jnp.stack([jnp.zeros_like(rows), rows, cols], -1).reshape(-1, 3)


def rope(ids_n3: jax.Array, axes_dims: tuple[int, ...], theta: float = 10000.0,
         dtype: Any = jnp.float32) -> tuple[jax.Array, jax.Array]:
    """(cos, sin), each [n, sum(axes_dims)]: per id axis, frequencies repeated pairwise as
    diffusers' ``FluxPosEmbed`` (``repeat_interleave_real``) lays them out."""
    cos, sin = [], []
    for i, d in enumerate(axes_dims):
        freqs = 1.0 / theta ** (jnp.arange(0, d, 2, dtype=dtype) / d)  # [d/2]
        angle = ids_n3[:, i:i + 1].astype(dtype) * freqs[None]
        cos.append(jnp.repeat(jnp.cos(angle), 2, axis=-1))
        sin.append(jnp.repeat(jnp.sin(angle), 2, axis=-1))
    return jnp.concatenate(cos, -1), jnp.concatenate(sin, -1)


def apply_rope(x_bnhd: jax.Array, cos_nd: jax.Array, sin_nd: jax.Array) -> jax.Array:
    """Rotates consecutive (real, imaginary) pairs of the head dim."""
    pairs = x_bnhd.reshape(*x_bnhd.shape[:-1], -1, 2)
    rotated = jnp.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(x_bnhd.shape)
    c, s = cos_nd[None, :, None, :], sin_nd[None, :, None, :]
    out = x_bnhd.astype(c.dtype) * c + rotated.astype(c.dtype) * s
    return out.astype(x_bnhd.dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * scale over the last axis (variance in float32)."""

    eps: float = 1e-6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        x32 = x.astype(jnp.promote_types(jnp.float32, x.dtype))
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + self.eps)
        return (x32 * scale).astype(self.dtype)


def _layer_norm(x: jax.Array) -> jax.Array:
    """LayerNorm without affine parameters, eps 1e-6 (every Flux norm before modulation),
    statistics in float32."""
    x32 = x.astype(jnp.promote_types(jnp.float32, x.dtype))
    mean = jnp.mean(x32, -1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), -1, keepdims=True)
    return ((x32 - mean) * jax.lax.rsqrt(var + 1e-6)).astype(x.dtype)


def _modulate(x_bne: jax.Array, shift_be: jax.Array, scale_be: jax.Array) -> jax.Array:
    return x_bne * (1 + scale_be[:, None]) + shift_be[:, None]


class _Attention(nn.Module):
    """Flux attention: q/k RMS-normed per head, rotary embedded; with ``context`` it is the
    joint attention of a double-stream block (text tokens first, then image tokens)."""

    heads: int
    head_dim: int
    pre_only: bool = False
    attention: Any = "xla"
    dtype: Any = jnp.float32

    def _qkv(self, x, names, norms):
        b, n, _ = x.shape
        inner = self.heads * self.head_dim
        q, k, v = (nn.Dense(inner, dtype=self.dtype, name=m)(x).reshape(b, n, self.heads, -1)
                   for m in names)
        q = RMSNorm(dtype=self.dtype, name=norms[0])(q)
        k = RMSNorm(dtype=self.dtype, name=norms[1])(k)
        return q, k, v

    @nn.compact
    def __call__(self, x_bse, rope_cs, context_bte=None):
        q, k, v = self._qkv(x_bse, ("to_q", "to_k", "to_v"), ("norm_q", "norm_k"))
        t = 0
        if context_bte is not None:
            t = context_bte.shape[1]
            cq, ck, cv = self._qkv(context_bte, ("add_q_proj", "add_k_proj", "add_v_proj"),
                                   ("norm_added_q", "norm_added_k"))
            q, k, v = (jnp.concatenate(p, axis=1) for p in ((cq, q), (ck, k), (cv, v)))
        q, k = apply_rope(q, *rope_cs), apply_rope(k, *rope_cs)
        out = attention_fn(self.attention)(q, k, v, self.head_dim ** -0.5)
        out = out.reshape(*out.shape[:2], -1).astype(self.dtype)  # [b, n, h*d]
        if self.pre_only:
            return out
        e = x_bse.shape[-1]
        img = nn.Dense(e, dtype=self.dtype, name="to_out_0")(out[:, t:])
        if context_bte is None:
            return img
        return img, nn.Dense(e, dtype=self.dtype, name="to_add_out")(out[:, :t])


class _FeedForward(nn.Module):
    """diffusers' FeedForward with tanh GELU: ``net_0/proj`` then ``net_2``."""

    dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = _Proj(4 * self.dim, self.dtype, name="net_0")(x)
        return nn.Dense(self.dim, dtype=self.dtype, name="net_2")(h)


class _Proj(nn.Module):
    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        return nn.gelu(nn.Dense(self.features, dtype=self.dtype, name="proj")(x), approximate=True)


class _AdaNorm(nn.Module):
    """SiLU-linear of the conditioning vector, chunked into ``chunks`` modulation vectors."""

    chunks: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, temb_be):
        e = temb_be.shape[-1]
        out = nn.Dense(self.chunks * e, dtype=self.dtype, name="linear")(nn.silu(temb_be))
        return jnp.split(out, self.chunks, axis=-1)


class FluxTransformerBlock(nn.Module):
    """Double-stream block: image and text streams with their own weights, joint attention."""

    cfg: FluxConfig
    attention: Any = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_bse, context_bte, temb_be, rope_cs):
        cfg, e = self.cfg, self.cfg.inner_dim
        sh, sc, g, sh2, sc2, g2 = _AdaNorm(6, self.dtype, name="norm1")(temb_be)
        csh, csc, cg, csh2, csc2, cg2 = _AdaNorm(6, self.dtype, name="norm1_context")(temb_be)
        attn, cattn = _Attention(cfg.num_attention_heads, cfg.attention_head_dim,
                                 attention=self.attention, dtype=self.dtype, name="attn")(
            _modulate(_layer_norm(x_bse), sh, sc), rope_cs,
            _modulate(_layer_norm(context_bte), csh, csc))
        x_bse = x_bse + g[:, None] * attn
        ff = _FeedForward(e, self.dtype, name="ff")(_modulate(_layer_norm(x_bse), sh2, sc2))
        x_bse = x_bse + g2[:, None] * ff
        context_bte = context_bte + cg[:, None] * cattn
        cff = _FeedForward(e, self.dtype, name="ff_context")(
            _modulate(_layer_norm(context_bte), csh2, csc2))
        return x_bse, context_bte + cg2[:, None] * cff


class FluxSingleTransformerBlock(nn.Module):
    """Single-stream block over the joint sequence: attention and MLP in parallel."""

    cfg: FluxConfig
    attention: Any = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_bne, temb_be, rope_cs):
        cfg, e = self.cfg, self.cfg.inner_dim
        shift, scale, gate = _AdaNorm(3, self.dtype, name="norm")(temb_be)
        h = _modulate(_layer_norm(x_bne), shift, scale)
        mlp = nn.gelu(nn.Dense(4 * e, dtype=self.dtype, name="proj_mlp")(h), approximate=True)
        attn = _Attention(cfg.num_attention_heads, cfg.attention_head_dim, pre_only=True,
                          attention=self.attention, dtype=self.dtype, name="attn")(h, rope_cs)
        out = nn.Dense(e, dtype=self.dtype, name="proj_out")(jnp.concatenate([attn, mlp], -1))
        return x_bne + gate[:, None] * out


class _TimeTextEmbed(nn.Module):
    """timestep (+ guidance) sinusoids through MLPs, plus the pooled text vector's MLP."""

    cfg: FluxConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, sigma_b, pooled_bp, guidance_b):
        e = self.cfg.inner_dim
        def proj(v):
            return timestep_embedding(v * 1000.0, 256, True, 0.0).astype(self.dtype)
        temb = TimestepEmbedding(e, self.dtype, name="timestep_embedder")(proj(sigma_b))
        if self.cfg.guidance_embeds:
            if guidance_b is None:
                raise ValueError("a guidance-distilled Flux transformer ([dev]) needs guidance")
            temb = temb + TimestepEmbedding(e, self.dtype, name="guidance_embedder")(
                proj(guidance_b))
        return temb + TimestepEmbedding(e, self.dtype, name="text_embedder")(pooled_bp)


class FluxTransformer2DModel(nn.Module):
    """``(latents [b, s, 4c] packed, text [b, t, joint_dim], pooled [b, p], sigma [b] in [0, 1],
    img_ids [s, 3], txt_ids [t, 3], guidance [b] or None) -> velocity [b, s, 4c]``."""

    config: FluxConfig
    dtype: Any = jnp.float32
    attention: Any = "xla"
    remat: str = "none"

    def init_weights(self, key: jax.Array) -> dict:
        """Random parameters (use under ``jax.eval_shape`` for the tree's shapes)."""
        cfg = self.config
        x = jnp.zeros((1, 4, cfg.in_channels))
        ctx = jnp.zeros((1, 2, cfg.joint_attention_dim))
        pooled = jnp.zeros((1, cfg.pooled_projection_dim))
        g = jnp.ones((1,)) if cfg.guidance_embeds else None
        return self.init(key, x, ctx, pooled, jnp.ones((1,)), image_ids(4, 4),
                         jnp.zeros((2, 3), jnp.int32), g)["params"]

    def __call__(self, hidden_bsk, context_btd, pooled_bp, sigma_b, img_ids, txt_ids,
                 guidance_b=None):
        args = (hidden_bsk, context_btd, pooled_bp, sigma_b, img_ids, txt_ids, guidance_b)
        policy = None if self.remat == "blocks" else checkpoint_policy(self.remat)
        if policy is None:
            return self._forward(*args)
        return nn.remat(type(self)._forward, policy=policy)(self, *args)

    @nn.compact
    def _forward(self, hidden_bsk, context_btd, pooled_bp, sigma_b, img_ids, txt_ids,
                 guidance_b):
        cfg, dtype = self.config, self.dtype
        kw = {"attention": self.attention, "dtype": dtype}
        sigma_b = jnp.broadcast_to(jnp.asarray(sigma_b), hidden_bsk.shape[:1])
        temb = _TimeTextEmbed(cfg, dtype, name="time_text_embed")(
            sigma_b, pooled_bp.astype(dtype), guidance_b)
        x = nn.Dense(cfg.inner_dim, dtype=dtype, name="x_embedder")(hidden_bsk.astype(dtype))
        ctx = nn.Dense(cfg.inner_dim, dtype=dtype, name="context_embedder")(
            context_btd.astype(dtype))
        ids = jnp.concatenate([txt_ids, img_ids], axis=0)
        rope_dtype = jnp.float64 if dtype == jnp.float64 else jnp.float32
        rope_cs = rope(ids, cfg.axes_dims_rope, dtype=rope_dtype)
        double = remat_class(FluxTransformerBlock, self.remat)
        for i in range(cfg.num_layers):
            x, ctx = double(cfg, name=f"transformer_blocks_{i}", **kw)(x, ctx, temb, rope_cs)
        t = ctx.shape[1]
        x = jnp.concatenate([ctx, x], axis=1)
        single = remat_class(FluxSingleTransformerBlock, self.remat)
        for i in range(cfg.num_single_layers):
            x = single(cfg, name=f"single_transformer_blocks_{i}", **kw)(x, temb, rope_cs)
        x = x[:, t:]
        scale, shift = _AdaNorm(2, dtype, name="norm_out")(temb)
        x = _modulate(_layer_norm(x), shift, scale)
        out = cfg.out_channels or cfg.in_channels
        return nn.Dense(cfg.patch_size ** 2 * out, dtype=dtype, name="proj_out")(x)
