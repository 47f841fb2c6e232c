"""The T5 v1.1 encoder (Flux's ``text_encoder_2``, T5-XXL): relative position buckets computed in
the first layer and shared by all, unscaled attention logits, gated-GELU feed-forward, RMSNorm
without mean subtraction or bias.

Parameter names are transformers' ``T5EncoderModel`` names (``encoder/block_0/layer_0/
SelfAttention/q/kernel`` for ``encoder.block.0.layer.0.SelfAttention.q.weight``).

Axis letters: b batch, t query tokens, s key tokens, h heads, d width.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"

    @classmethod
    def from_transformers(cls, cfg: dict) -> T5Config:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in cfg.items() if k in names and v is not None}
        if kw.get("feed_forward_proj", "gated-gelu") != "gated-gelu":
            raise ValueError(f"T5 feed_forward_proj {kw['feed_forward_proj']!r} is not supported "
                             "(T5 v1.1 encoders use gated-gelu)")
        return cls(**kw)


def relative_buckets(q_len: int, k_len: int, num_buckets: int, max_distance: int) -> jax.Array:
    """[t, s] bidirectional relative-position buckets, as T5's ``_relative_position_bucket``:
    half the buckets per direction, exact below num_buckets / 4, logarithmic beyond."""
    rel = jnp.arange(k_len)[None, :] - jnp.arange(q_len)[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).astype(jnp.int32) * half
    rel = jnp.abs(rel)
    exact = half // 2
    safe = jnp.maximum(rel, 1).astype(jnp.float32)
    large = exact + (jnp.log(safe / exact) / math.log(max_distance / exact)
                     * (half - exact)).astype(jnp.int32)
    large = jnp.minimum(large, half - 1)
    return buckets + jnp.where(rel < exact, rel, large)


class T5LayerNorm(nn.Module):
    """x / rms(x) * scale (no mean, no bias); statistics in float32."""

    eps: float = 1e-6
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        x32 = x.astype(jnp.promote_types(jnp.float32, x.dtype))
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + self.eps)
        return (scale * x32).astype(self.dtype)


class _SelfAttention(nn.Module):
    cfg: T5Config
    has_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd, bias_bhts):
        cfg = self.cfg
        b, t, _ = x_btd.shape
        inner = cfg.num_heads * cfg.d_kv
        def dense(n, f):
            return nn.Dense(f, use_bias=False, dtype=self.dtype, name=n)
        q, k, v = (dense(n, inner)(x_btd).reshape(b, t, cfg.num_heads, cfg.d_kv) for n in "qkv")
        if self.has_bias:
            table = nn.Embed(cfg.relative_attention_num_buckets, cfg.num_heads,
                             name="relative_attention_bias")
            buckets = relative_buckets(t, t, cfg.relative_attention_num_buckets,
                                       cfg.relative_attention_max_distance)
            bias_bhts = jnp.transpose(table(buckets), (2, 0, 1))[None]  # [1, h, t, s]
        scores = jnp.einsum("bthd,bshd->bhts", q, k).astype(jnp.float32)  # T5: no 1/sqrt(d)
        scores = scores + bias_bhts.astype(jnp.float32)
        probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        out = jnp.einsum("bhts,bshd->bthd", probs, v).reshape(b, t, inner)
        return dense("o", cfg.d_model)(out), bias_bhts


class _Attention(nn.Module):
    cfg: T5Config
    has_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias):
        h = T5LayerNorm(self.cfg.layer_norm_epsilon, self.dtype, name="layer_norm")(x)
        out, bias = _SelfAttention(self.cfg, self.has_bias, self.dtype, name="SelfAttention")(
            h, bias)
        return x + out, bias


class _GatedGelu(nn.Module):
    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        def dense(n, f):
            return nn.Dense(f, use_bias=False, dtype=self.dtype, name=n)
        h = nn.gelu(dense("wi_0", self.cfg.d_ff)(x), approximate=True) * \
            dense("wi_1", self.cfg.d_ff)(x)
        return dense("wo", self.cfg.d_model)(h)


class _FeedForward(nn.Module):
    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = T5LayerNorm(self.cfg.layer_norm_epsilon, self.dtype, name="layer_norm")(x)
        return x + _GatedGelu(self.cfg, self.dtype, name="DenseReluDense")(h)


class _Block(nn.Module):
    cfg: T5Config
    has_bias: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, bias):
        x, bias = _Attention(self.cfg, self.has_bias, self.dtype, name="layer_0")(x, bias)
        return _FeedForward(self.cfg, self.dtype, name="layer_1")(x), bias


class _Stack(nn.Module):
    cfg: T5Config
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd):
        bias = None
        for i in range(self.cfg.num_layers):
            x_btd, bias = _Block(self.cfg, i == 0, self.dtype, name=f"block_{i}")(x_btd, bias)
        return T5LayerNorm(self.cfg.layer_norm_epsilon, self.dtype, name="final_layer_norm")(x_btd)


class T5EncoderModel(nn.Module):
    """``ids [b, t] -> last hidden state [b, t, d_model]`` (no attention mask: FluxPipeline
    encodes the padded prompt whole, pads included)."""

    config: T5Config
    dtype: Any = jnp.float32

    def init_weights(self, key: jax.Array) -> dict:
        """Random parameters (use under ``jax.eval_shape`` for the tree's shapes)."""
        return self.init(key, jnp.zeros((1, 4), jnp.int32))["params"]

    @nn.compact
    def __call__(self, input_ids):
        emb = nn.Embed(self.config.vocab_size, self.config.d_model, dtype=self.dtype,
                       name="shared")(input_ids.astype(jnp.int32))
        return _Stack(self.config, self.dtype, name="encoder")(emb)
