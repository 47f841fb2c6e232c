"""The UNet's spatial transformer: GroupNorm, projection in, transformer blocks (self-attention,
cross-attention to the text, GEGLU feed-forward), projection out, residual.

A stack of identical blocks (SDXL: 10 at the lowest resolution, 2 above it) runs as one
``lax.scan`` over the blocks' parameters stacked at call time (``scan``), so it is traced and
compiled once instead of ``depth`` times; the parameter tree keeps one entry per block
(``transformer_blocks_{i}``), as diffusers names them. Stacking copies the stack's weights once
per call (SDXL: 4 GB in bf16, about 2 ms of an H200's bandwidth, against ~500 ms per call).
The UNet scans when asked (``UNetConfig.scan_layers``: it compiles faster, but the loop costs
SDXL 14% of its gradient throughput on an H200) and under the ``blocks`` remat policy.

Axis letters: b batch, t image tokens (h * w), s text tokens, c channels.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsteer.models.nn import fused
from jaxsteer.models.nn.layers import GroupNorm, LayerNorm, attention_fn, remat_class
from jaxsteer.models.remat import checkpoint_policy


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names (to_q, to_k, to_v, to_out_0)."""

    heads: int
    head_dim: int
    attention: Any = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btc: jax.Array, context_bsc: jax.Array | None = None) -> jax.Array:
        context_bsc = x_btc if context_bsc is None else context_bsc
        b, inner = x_btc.shape[0], self.heads * self.head_dim
        def dense(name):
            return nn.Dense(inner, use_bias=False, dtype=self.dtype, name=name)
        q = dense("to_q")(x_btc).reshape(b, -1, self.heads, self.head_dim)
        k = dense("to_k")(context_bsc).reshape(b, -1, self.heads, self.head_dim)
        v = dense("to_v")(context_bsc).reshape(b, -1, self.heads, self.head_dim)
        out_bthd = attention_fn(self.attention)(q, k, v, self.head_dim ** -0.5)
        return nn.Dense(x_btc.shape[-1], dtype=self.dtype, name="to_out_0")(
            out_bthd.reshape(b, -1, inner))


class GEGLU(nn.Module):
    """proj to 2 x 4c, value * gelu(gate). PyTorch uses the exact gelu; diffusers' Flax port
    the tanh approximation (``approximate``), which models trained with it keep."""

    dim: int
    approximate: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.Dense(self.dim * 8, dtype=self.dtype, name="proj")(x)
        return fused.geglu(h, self.approximate)


class FeedForward(nn.Module):
    dim: int
    gelu_approximate: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = GEGLU(self.dim, self.gelu_approximate, self.dtype, name="net_0")(x)
        return nn.Dense(self.dim, dtype=self.dtype, name="net_2")(h)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention (or cross-attention when ``only_cross_attention``), cross-attention,
    feed-forward, each with a residual."""

    heads: int
    head_dim: int
    only_cross_attention: bool = False
    gelu_approximate: bool = False
    attention: Any = "xla"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btc: jax.Array, context_bsc: jax.Array) -> jax.Array:
        def norm(name):
            return LayerNorm(1e-5, name=name)
        def attn(name):
            return Attention(self.heads, self.head_dim, self.attention,
                                              self.dtype, name=name)
        self_context = context_bsc if self.only_cross_attention else None
        x_btc = attn("attn1")(norm("norm1")(x_btc), self_context) + x_btc
        x_btc = attn("attn2")(norm("norm2")(x_btc), context_bsc) + x_btc
        ff = FeedForward(x_btc.shape[-1], self.gelu_approximate, self.dtype, name="ff")
        return ff(norm("norm3")(x_btc)) + x_btc


class Transformer2DModel(nn.Module):
    """``x [b, h, w, c]`` attending to ``context [b, s, e]``; returns [b, h, w, c].

    ``norm_eps`` is 1e-6 in PyTorch diffusers and 1e-5 in diffusers' Flax port. ``scan``: run
    ``depth`` > 1 blocks as one ``lax.scan`` (see the module docstring; always under ``blocks``).
    """

    heads: int
    depth: int = 1
    use_linear_projection: bool = False
    only_cross_attention: bool = False
    groups: int = 32
    norm_eps: float = 1e-6
    gelu_approximate: bool = False
    attention: Any = "xla"
    remat: str = "none"  # the UNet's policy (models/remat.py): blocks checkpoints each block
    dtype: Any = jnp.float32
    scan: bool = True

    @nn.compact
    def __call__(self, x_bhwc: jax.Array, context_bsc: jax.Array) -> jax.Array:
        b, h, w, c = x_bhwc.shape
        hidden = GroupNorm(self.groups, self.norm_eps, name="norm")(x_bhwc)
        if self.use_linear_projection:
            hidden = nn.Dense(c, dtype=self.dtype, name="proj_in")(hidden.reshape(b, h * w, c))
        else:
            hidden = nn.Conv(c, (1, 1), padding="VALID", dtype=self.dtype,
                             name="proj_in")(hidden).reshape(b, h * w, c)
        args = (self.heads, c // self.heads, self.only_cross_attention, self.gelu_approximate,
                self.attention, self.dtype)
        # ``blocks`` (the memory ladder's last rung) always scans: the loop keeps one block's
        # recomputation live at a time. Unrolled, the rung saved 11% of the temp memory on the
        # CPU, scanned 58% (tests/models/test_remat.py's UNet).
        scan = self.scan or self.remat == "blocks"
        if scan and self.depth > 1 and not self.is_initializing():
            hidden = self._scanned(BasicTransformerBlock(*args, parent=None), hidden, context_bsc)
        else:  # (initialisation creates one parameter entry per block)
            block = remat_class(BasicTransformerBlock, self.remat)
            for i in range(self.depth):
                hidden = block(*args, name=f"transformer_blocks_{i}")(hidden, context_bsc)
        if self.use_linear_projection:
            hidden = nn.Dense(c, dtype=self.dtype, name="proj_out")(hidden).reshape(b, h, w, c)
        else:
            hidden = nn.Conv(c, (1, 1), padding="VALID", dtype=self.dtype,
                             name="proj_out")(hidden.reshape(b, h, w, c))
        return hidden + x_bhwc

    def _scanned(self, block: nn.Module, hidden_btc: jax.Array,
                 context_bsc: jax.Array) -> jax.Array:
        params = self.variables["params"]
        stacked = jax.tree.map(lambda *a: jnp.stack(a),
                               *(params[f"transformer_blocks_{i}"] for i in range(self.depth)))

        def body(h, p):
            return block.apply({"params": p}, h, context_bsc), None

        if self.remat != "none":
            # The body needs its own checkpoint: under the UNet's whole-forward checkpoint alone,
            # the backward pass would recompute the residuals of every block of the stack at once
            # (seen on CPU: matmuls kept 113 MB where none kept 72). ``blocks`` saves nothing
            # inside a block; the other policies save what they save everywhere.
            policy = None if self.remat == "blocks" else checkpoint_policy(self.remat)
            body = jax.checkpoint(body, prevent_cse=False, policy=policy)
        return jax.lax.scan(body, hidden_btc, stacked)[0]
