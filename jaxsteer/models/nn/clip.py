"""The CLIP text encoder: ViT-L/14's (SD 1.x, SDXL's first encoder) and OpenCLIP's (SD 2.x,
SDXL's ViT-bigG second encoder, with its text projection).

The pipelines use: SD 1.x / 2.x the last hidden state (after the final layer norm); SDXL the
penultimate layer's output of both encoders and the projected pooled output of the second.

Axis letters: b batch, t tokens, d width, h heads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
    vocab_size: int = 49408
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"  # ViT-L/14; OpenCLIP models use "gelu" (exact)
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 2
    projection_dim: int | None = None  # set: the model has a text projection (bigG)

    @classmethod
    def from_transformers(cls, cfg: dict, with_projection: bool = False) -> CLIPTextConfig:
        """From a transformers ``config.json``; ``with_projection`` for
        CLIPTextModelWithProjection."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "projection_dim"]
        kw = {k: cfg[k] for k in names if k in cfg}
        if kw.get("hidden_act", "quick_gelu") not in _ACTIVATIONS:
            raise ValueError(f"CLIP activation {kw['hidden_act']!r} is not supported")
        proj = int(cfg.get("projection_dim", 768)) if with_projection else None
        return cls(**kw, projection_dim=proj)


_ACTIVATIONS = {"quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
                "gelu": lambda x: jax.nn.gelu(x, approximate=False),
                "gelu_new": lambda x: jax.nn.gelu(x, approximate=True)}


@flax.struct.dataclass
class CLIPTextOutput:
    last_hidden_state: jax.Array  # [b, t, d], after the final layer norm
    hidden_states: tuple  # embeddings, then each layer's output: [b, t, d] each
    pooled: jax.Array  # [b, d], the final-normed state at the end-of-text token
    text_embeds: jax.Array | None  # [b, projection_dim] when the model has a projection

    @property
    def penultimate(self) -> jax.Array:
        return self.hidden_states[-2]


class _SelfAttention(nn.Module):
    """Causal multi-head self-attention (``self_attn``: q_proj, k_proj, v_proj, out_proj)."""

    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd: jax.Array, mask_b11t: jax.Array | None) -> jax.Array:
        b, t, d = x_btd.shape
        heads = self.cfg.num_attention_heads
        q_bthd, k_bthd, v_bthd = (
            nn.Dense(d, dtype=self.dtype, name=f"{n}_proj")(x_btd).reshape(b, t, heads, d // heads)
            for n in "qkv")
        mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
        if mask_b11t is not None:
            mask = mask & mask_b11t
        out = jax.nn.dot_product_attention(q_bthd, k_bthd, v_bthd, mask=mask,
                                           scale=(d // heads) ** -0.5)
        return nn.Dense(d, dtype=self.dtype, name="out_proj")(out.reshape(b, t, d))


class _MLP(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd: jax.Array) -> jax.Array:
        h = nn.Dense(self.cfg.intermediate_size, dtype=self.dtype, name="fc1")(x_btd)
        h = _ACTIVATIONS[self.cfg.hidden_act](h)
        return nn.Dense(x_btd.shape[-1], dtype=self.dtype, name="fc2")(h)


class _Layer(nn.Module):
    """Pre-norm causal self-attention and MLP (transformers' ``CLIPEncoderLayer`` names)."""

    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd: jax.Array, mask_b11t: jax.Array | None) -> jax.Array:
        cfg = self.cfg
        def norm(name):
            return nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=self.dtype,
                                                 name=name)
        x_btd = x_btd + _SelfAttention(cfg, self.dtype, name="self_attn")(
            norm("layer_norm1")(x_btd), mask_b11t)
        return x_btd + _MLP(cfg, self.dtype, name="mlp")(norm("layer_norm2")(x_btd))


class _Embeddings(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids_bt: jax.Array, pos_bt: jax.Array) -> jax.Array:
        d = self.cfg.hidden_size
        tok = nn.Embed(self.cfg.vocab_size, d, dtype=self.dtype, name="token_embedding")
        pos = nn.Embed(self.cfg.max_position_embeddings, d, dtype=self.dtype,
                       name="position_embedding")
        return tok(ids_bt.astype(jnp.int32)) + pos(pos_bt.astype(jnp.int32))


class _Layers(nn.Module):
    """transformers names the layers "0", "1", ... under ``encoder/layers``."""

    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd: jax.Array, mask_b11t: jax.Array | None) -> tuple:
        hidden = (x_btd,)
        for i in range(self.cfg.num_hidden_layers):
            hidden += (_Layer(self.cfg, self.dtype, name=str(i))(hidden[-1], mask_b11t),)
        return hidden


class _Encoder(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_btd: jax.Array, mask_b11t: jax.Array | None) -> tuple:
        return _Layers(self.cfg, self.dtype, name="layers")(x_btd, mask_b11t)


class _TextTransformer(nn.Module):
    cfg: CLIPTextConfig
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, ids_bt, mask_bt, pos_bt):
        cfg = self.cfg
        x = _Embeddings(cfg, self.dtype, name="embeddings")(ids_bt, pos_bt)
        mask = None if mask_bt is None else mask_bt.astype(bool)[:, None, None, :]
        hidden = _Encoder(cfg, self.dtype, name="encoder")(x, mask)
        last = nn.LayerNorm(epsilon=cfg.layer_norm_eps, dtype=self.dtype,
                            name="final_layer_norm")(hidden[-1])
        if cfg.eos_token_id == 2:  # configs before transformers#24773: the end token has the top id
            eos_b = jnp.argmax(ids_bt, axis=-1)
        else:
            eos_b = jnp.argmax(ids_bt == cfg.eos_token_id, axis=-1)
        return last, hidden, last[jnp.arange(last.shape[0]), eos_b]


class CLIPTextModel(nn.Module):
    """``(ids [b, t], mask [b, t] or None, positions [b, t] or None) -> CLIPTextOutput``.

    The parameter tree is transformers' Flax tree (``text_model/...``, ``text_projection``).
    Attention is jax's reference dot-product attention with the causal mask: the encoder runs
    once per prompt, outside the differentiated denoiser call, so it has no kernel option.
    """

    config: CLIPTextConfig
    dtype: Any = jnp.float32

    def init_weights(self, key: jax.Array) -> dict:
        """Random parameters (use under ``jax.eval_shape`` for the tree's shapes)."""
        return self.init(key, jnp.zeros((1, self.config.max_position_embeddings), jnp.int32))[
            "params"]

    @nn.compact
    def __call__(self, input_ids, attention_mask=None, position_ids=None) -> CLIPTextOutput:
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(input_ids.shape[-1]), input_ids.shape)
        last, hidden, pooled = _TextTransformer(self.config, self.dtype, name="text_model")(
            input_ids, attention_mask, position_ids)
        embeds = None
        if self.config.projection_dim is not None:
            embeds = nn.Dense(self.config.projection_dim, use_bias=False, dtype=self.dtype,
                              name="text_projection")(pooled)
        return CLIPTextOutput(last_hidden_state=last, hidden_states=hidden, pooled=pooled,
                              text_embeds=embeds)
