"""UNet2DConditionModel: SD 1.x, SD 2.x / SD-Turbo (linear projections, heads per block) and
SDXL (text-time additional embedding, several transformer layers per block).

Inputs and outputs are channels first (``[b, c, h, w]``) as in diffusers; inside, NHWC.
v-prediction (SD 2.x) is a property of the schedule, not of the network.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsteer.models.nn.layers import (
    Downsample2D,
    GroupNorm,
    ResnetBlock2D,
    TimestepEmbedding,
    Upsample2D,
    conv,
    remat_class,
    timestep_embedding,
)
from jaxsteer.models.nn.transformer import Transformer2DModel
from jaxsteer.models.remat import checkpoint_policy

_CROSS = ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D")
_PLAIN = ("DownBlock2D", "UpBlock2D")
# diffusers config keys that change the network and that this port does not implement, with the
# value that keeps it the plain SD/SDXL UNet.
_UNSUPPORTED = {"class_embed_type": None, "time_cond_proj_dim": None, "encoder_hid_dim": None,
                "dual_cross_attention": False, "resnet_time_scale_shift": "default",
                "time_embedding_type": "positional", "timestep_post_act": None,
                "conv_in_kernel": 3, "conv_out_kernel": 3, "act_fn": "silu",
                "reverse_transformer_layers_per_block": None, "attention_type": "default",
                "mid_block_only_cross_attention": None, "center_input_sample": False,
                "downsample_padding": 1, "mid_block_scale_factor": 1, "num_class_embeds": None,
                "encoder_hid_dim_type": None, "resnet_skip_time_act": False,
                "resnet_out_scale_factor": 1.0, "time_embedding_dim": None,
                "time_embedding_act_fn": None, "class_embeddings_concat": False,
                "cross_attention_norm": None}


def _per_block(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """The network's shape, from a diffusers ``unet/config.json`` (``from_diffusers``)."""

    sample_size: int = 64
    in_channels: int = 4
    out_channels: int = 4
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    up_block_types: tuple[str, ...] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    mid_block_type: str | None = "UNetMidBlock2DCrossAttn"
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    heads: tuple[int, ...] = (8, 8, 8, 8)  # per down block; diffusers' ``attention_head_dim``
    transformer_layers_per_block: tuple[int, ...] = (1, 1, 1, 1)
    only_cross_attention: tuple[bool, ...] = (False, False, False, False)
    cross_attention_dim: int = 768
    use_linear_projection: bool = False
    flip_sin_to_cos: bool = True
    freq_shift: float = 0.0
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    addition_embed_type: str | None = None  # None or "text_time" (SDXL)
    addition_time_embed_dim: int | None = None
    projection_class_embeddings_input_dim: int | None = None
    # Numerics of diffusers' Flax port, which the bundled shapes model was trained with:
    # GroupNorm eps of the spatial transformers (PyTorch 1e-6, Flax port 1e-5) and the GEGLU's
    # gelu (PyTorch exact, Flax port tanh approximation). ``diffusers_flax`` sets both.
    transformer_norm_eps: float = 1e-6
    gelu_approximate: bool = False
    # How the network is traced, not its function: stacks of identical transformer blocks run as
    # one ``lax.scan`` (models/nn/transformer.py). Part of the config so that programs traced
    # either way are cached apart. Off by default: on an H200 the SDXL-DMD2 kernel ran 27.4
    # grads/s scanned and 31.9 unrolled (compile 64 s against 93 s; results/2026-12-03-s12).
    scan_layers: bool = False

    @classmethod
    def from_diffusers(cls, cfg: dict, diffusers_flax: bool = False) -> UNetConfig:
        """From a diffusers config dict; ``diffusers_flax`` for weights trained with its Flax port.

        Raises ValueError for options this port does not implement.
        """
        bad = {k: cfg[k] for k, ok in _UNSUPPORTED.items() if k in cfg and cfg[k] != ok}
        if bad:
            raise ValueError(f"UNet options not supported by jaxsteer's UNet: {bad}")
        down = tuple(cfg.get("down_block_types", cls.down_block_types))
        up = tuple(cfg.get("up_block_types", cls.up_block_types))
        for name in down + up:
            if name not in _CROSS + _PLAIN:
                raise ValueError(f"UNet block type {name!r} is not supported")
        if cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn") not in (
                "UNetMidBlock2DCrossAttn", None):
            raise ValueError(f"UNet mid block {cfg['mid_block_type']!r} is not supported")
        tlpb = cfg.get("transformer_layers_per_block", 1)
        if isinstance(cfg.get("cross_attention_dim"), (list, tuple)) or (
                isinstance(tlpb, (list, tuple))
                and any(isinstance(x, (list, tuple)) for x in tlpb)):
            raise ValueError("per-block cross_attention_dim / nested transformer_layers_per_block "
                             "are not supported")
        if isinstance(cfg.get("layers_per_block", 2), (list, tuple)):
            # a config value, not an argument of the wrong type
            raise ValueError("per-block layers_per_block is not supported")  # noqa: TRY004
        n = len(down)
        # diffusers' naming bug: ``attention_head_dim`` holds the number of heads unless
        # ``num_attention_heads`` is given.
        heads = cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8)
        return cls(
            sample_size=int(cfg.get("sample_size", 64)), in_channels=int(cfg.get("in_channels", 4)),
            out_channels=int(cfg.get("out_channels", 4)), down_block_types=down,
            up_block_types=up, mid_block_type=cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn"),
            block_out_channels=tuple(int(c) for c in cfg.get("block_out_channels",
                                                             cls.block_out_channels)),
            layers_per_block=int(cfg.get("layers_per_block", 2)),
            heads=tuple(int(h) for h in _per_block(heads, n)),
            transformer_layers_per_block=tuple(
                int(x) for x in _per_block(cfg.get("transformer_layers_per_block", 1), n)),
            only_cross_attention=tuple(
                bool(x) for x in _per_block(cfg.get("only_cross_attention", False), n)),
            cross_attention_dim=int(cfg.get("cross_attention_dim", 1280)),
            use_linear_projection=bool(cfg.get("use_linear_projection", False)),
            flip_sin_to_cos=bool(cfg.get("flip_sin_to_cos", True)),
            freq_shift=float(cfg.get("freq_shift", 0)),
            norm_num_groups=int(cfg.get("norm_num_groups") or 32),
            norm_eps=float(cfg.get("norm_eps") or 1e-5),
            addition_embed_type=cfg.get("addition_embed_type"),
            addition_time_embed_dim=cfg.get("addition_time_embed_dim"),
            projection_class_embeddings_input_dim=cfg.get("projection_class_embeddings_input_dim"),
            transformer_norm_eps=1e-5 if diffusers_flax else 1e-6,
            gelu_approximate=diffusers_flax)


class _Block(nn.Module):
    """A down, mid or up block: resnets interleaved with spatial transformers (``cross``)."""

    cfg: UNetConfig
    out_channels: int
    num_layers: int
    heads: int
    depth: int
    cross: bool
    only_cross: bool = False
    sample: str | None = None  # "down" | "up" | None
    attention: Any = "xla"
    remat: str = "none"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, temb, context, skips=None):
        cfg, resnet = self.cfg, remat_class(ResnetBlock2D, self.remat)
        outputs = ()
        for i in range(self.num_layers):
            if skips is not None:  # up block: concatenate the matching down-block output
                x, skips = jnp.concatenate([x, skips[-1]], axis=-1), skips[:-1]
            x = resnet(self.out_channels, cfg.norm_num_groups, cfg.norm_eps, self.dtype,
                       name=f"resnets_{i}")(x, temb)
            if self.cross:
                x = Transformer2DModel(
                    self.heads, self.depth, cfg.use_linear_projection, self.only_cross,
                    cfg.norm_num_groups, cfg.transformer_norm_eps, cfg.gelu_approximate,
                    self.attention, self.remat, self.dtype, cfg.scan_layers,
                    name=f"attentions_{i}")(x, context)
            outputs += (x,)
        if self.sample == "down":
            x = Downsample2D(self.out_channels, dtype=self.dtype, name="downsamplers_0")(x)
            outputs += (x,)
        elif self.sample == "up":
            x = Upsample2D(self.out_channels, dtype=self.dtype, name="upsamplers_0")(x)
        return x, outputs


class _MidBlock(nn.Module):
    cfg: UNetConfig
    attention: Any = "xla"
    remat: str = "none"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, temb, context):
        cfg, resnet = self.cfg, remat_class(ResnetBlock2D, self.remat)
        c = cfg.block_out_channels[-1]
        x = resnet(c, cfg.norm_num_groups, cfg.norm_eps, self.dtype, name="resnets_0")(x, temb)
        x = Transformer2DModel(cfg.heads[-1], cfg.transformer_layers_per_block[-1],
                               cfg.use_linear_projection, False, cfg.norm_num_groups,
                               cfg.transformer_norm_eps, cfg.gelu_approximate, self.attention,
                               self.remat, self.dtype, cfg.scan_layers,
                               name="attentions_0")(x, context)
        return resnet(c, cfg.norm_num_groups, cfg.norm_eps, self.dtype, name="resnets_1")(x, temb)


class UNet2DConditionModel(nn.Module):
    """``(sample [b, c, h, w], timesteps [b] or [], text [b, s, e], added) -> [b, c, h, w]``.

    ``added_cond_kwargs`` (SDXL): ``{"text_embeds": [b, p], "time_ids": [b, 6]}``.
    """

    config: UNetConfig
    dtype: Any = jnp.float32
    attention: Any = "xla"
    remat: str = "none"

    def init_weights(self, key: jax.Array) -> dict:
        """Random parameters (use under ``jax.eval_shape`` for the tree's shapes)."""
        cfg = self.config
        x = jnp.zeros((1, cfg.in_channels, cfg.sample_size, cfg.sample_size), jnp.float32)
        emb = jnp.zeros((1, 1, cfg.cross_attention_dim), jnp.float32)
        added = None
        if cfg.addition_embed_type == "text_time":
            n_ids = 6
            text = cfg.projection_class_embeddings_input_dim - n_ids * cfg.addition_time_embed_dim
            added = {"text_embeds": jnp.zeros((1, text)), "time_ids": jnp.zeros((1, n_ids))}
        return self.init(key, x, jnp.ones((1,)), emb, added)["params"]

    def __call__(self, sample, timesteps, encoder_hidden_states, added_cond_kwargs=None):
        policy = None if self.remat == "blocks" else checkpoint_policy(self.remat)
        if policy is None:
            return self._forward(sample, timesteps, encoder_hidden_states, added_cond_kwargs)
        # The whole forward under one checkpoint with the policy (what it saves is its choice).
        fn = nn.remat(type(self)._forward, policy=policy)
        return fn(self, sample, timesteps, encoder_hidden_states, added_cond_kwargs)

    @nn.compact
    def _forward(self, sample, timesteps, encoder_hidden_states, added_cond_kwargs):
        # Blocks see the policy: ``blocks`` checkpoints each of them, a scanned stack checkpoints
        # its body with any policy (models/nn/transformer.py).
        cfg, dtype = self.config, self.dtype
        kw = {"attention": self.attention, "remat": self.remat, "dtype": self.dtype}
        channels = cfg.block_out_channels
        t_b = jnp.atleast_1d(jnp.asarray(timesteps)).astype(jnp.float32)
        temb = timestep_embedding(t_b, channels[0], cfg.flip_sin_to_cos, cfg.freq_shift)
        temb = TimestepEmbedding(4 * channels[0], dtype, name="time_embedding")(temb)
        if cfg.addition_embed_type == "text_time":
            temb = temb + self._text_time(added_cond_kwargs, 4 * channels[0])
        elif cfg.addition_embed_type is not None:
            raise ValueError(f"addition_embed_type {cfg.addition_embed_type!r} is not supported")

        x = conv(channels[0], dtype=dtype, name="conv_in")(jnp.transpose(sample, (0, 2, 3, 1)))
        skips = (x,)
        for i, kind in enumerate(cfg.down_block_types):
            last = i == len(channels) - 1
            x, out = _Block(cfg, channels[i], cfg.layers_per_block, cfg.heads[i],
                            cfg.transformer_layers_per_block[i], kind in _CROSS,
                            cfg.only_cross_attention[i], None if last else "down",
                            name=f"down_blocks_{i}", **kw)(x, temb, encoder_hidden_states)
            skips += out
        if cfg.mid_block_type is not None:
            x = _MidBlock(cfg, name="mid_block", **kw)(x, temb, encoder_hidden_states)
        rev = list(reversed(range(len(channels))))
        for i, kind in enumerate(cfg.up_block_types):
            n = cfg.layers_per_block + 1
            block_skips, skips = skips[-n:], skips[:-n]
            x, _ = _Block(cfg, channels[rev[i]], n, cfg.heads[rev[i]],
                          cfg.transformer_layers_per_block[rev[i]], kind in _CROSS,
                          cfg.only_cross_attention[rev[i]],
                          None if i == len(channels) - 1 else "up",
                          name=f"up_blocks_{i}", **kw)(x, temb, encoder_hidden_states, block_skips)
        x = GroupNorm(cfg.norm_num_groups, cfg.norm_eps, silu=True, name="conv_norm_out")(x)
        x = conv(cfg.out_channels, dtype=dtype, name="conv_out")(x)
        return jnp.transpose(x, (0, 3, 1, 2))

    def _text_time(self, added: dict | None, features: int) -> jax.Array:
        """SDXL's additional embedding of the pooled text embedding and the six time ids."""
        cfg = self.config
        if not added or "text_embeds" not in added or "time_ids" not in added:
            raise ValueError("an SDXL UNet needs added_cond_kwargs with text_embeds and time_ids")
        text_bp, ids_bn = added["text_embeds"], added["time_ids"]
        time_bf = timestep_embedding(ids_bn.reshape(-1), cfg.addition_time_embed_dim,
                                     cfg.flip_sin_to_cos, cfg.freq_shift)
        time_bf = time_bf.reshape(text_bp.shape[0], -1)
        add = jnp.concatenate([text_bp, time_bf.astype(text_bp.dtype)], axis=-1)
        return TimestepEmbedding(features, self.dtype, name="add_embedding")(add)
