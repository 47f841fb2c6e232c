"""The scenes model: a latent-space SD pipeline made of jaxsteer's own networks, and its folder.

An AutoencoderKL (64 x 64 x 3 images -> 16 x 16 x 4 latents by default), a latent UNet and a
CLIP text encoder, saved in diffusers' pipeline layout *with* a ``vae/`` folder, so the `sd`
adapter (`jaxsteer.models.load`) reads it as a latent model exactly like a user's SD model. The
UNet and text configs are the shapes model's (`jaxsteer.shapes.model.ShapesModelConfig`) with
the latent channels and the scenes vocabulary; weights are Flax msgpack of our parameter trees,
the formats `jaxsteer.models.nn.load` reads first.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.nn.clip import CLIPTextConfig, CLIPTextModel
from jaxsteer.models.nn.unet import UNet2DConditionModel, UNetConfig
from jaxsteer.models.nn.vae import AutoencoderKL, VAEConfig
from jaxsteer.models.tiny import random_params
from jaxsteer.records import atomic_write_bytes, publish_folder, write_json
from jaxsteer.scenes.tokenizer import MAX_LENGTH, vocab, write_tokenizer
from jaxsteer.shapes.model import MODEL_INDEX, SCHEDULER, ShapesModelConfig
from jaxsteer.shapes.tokenizer import BOS, EOS


@dataclasses.dataclass(frozen=True)
class ScenesModelConfig:
    """Architecture of the scenes model (hashable: it keys the compiled train steps)."""

    image_size: int = opt(64, "image side in pixels")
    vae_channels: tuple[int, ...] = opt((32, 32, 64), "VAE channels per level (one 2x "
                                        "downsampling between levels: 3 levels, 64 -> 16)")
    vae_layers: int = opt(1, "ResNet layers per VAE encoder block (decoder: one more)")
    vae_groups: int = opt(32, "GroupNorm groups of the VAE (must divide its channels)")
    latent_channels: int = opt(4, "latent channels (SD's 4)")
    channels: tuple[int, ...] = opt((32, 64, 96), "UNet channels per level (multiples of 32)")
    attention_levels: tuple[int, ...] = opt((1, 2), "UNet levels with self+cross attention")
    layers_per_block: int = opt(1, "ResNet layers per UNet block")
    heads: int = opt(4, "attention heads in the UNet")
    text_width: int = opt(128, "text encoder width D (the differentiated embedding's size)")
    text_layers: int = opt(3, "text encoder transformer layers")
    text_heads: int = opt(4, "text encoder attention heads")

    def __post_init__(self):
        if any(c % self.vae_groups for c in self.vae_channels):
            raise UserError(f"--model.vae-channels {self.vae_channels} must be multiples of "
                            f"--model.vae-groups {self.vae_groups}")
        if self.image_size % 2 ** (len(self.vae_channels) - 1):
            raise UserError("--model.image-size must be divisible by 2 per VAE level")
        self.shapes_config()   # the UNet's own checks

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    def shapes_config(self) -> ShapesModelConfig:
        """The shapes model of the same UNet and text encoder, at the latent size."""
        return ShapesModelConfig(self.latent_size, self.channels, self.attention_levels,
                                 self.layers_per_block, self.heads, self.text_width,
                                 self.text_layers, self.text_heads)

    def unet_config(self) -> dict[str, Any]:
        """The UNet's ``config.json`` (diffusers' keys): the shapes UNet on latents."""
        c = self.latent_channels
        return {**self.shapes_config().unet_config(), "in_channels": c, "out_channels": c}

    def text_config(self) -> dict[str, Any]:
        """The text encoder's ``config.json`` with the scenes vocabulary and length."""
        v = vocab()
        return {**self.shapes_config().text_config(), "vocab_size": len(v),
                "max_position_embeddings": MAX_LENGTH, "bos_token_id": v[BOS],
                "eos_token_id": v[EOS], "pad_token_id": v[EOS]}

    def vae_config(self, scaling_factor: float = 1.0) -> dict[str, Any]:
        """The VAE's ``config.json`` (diffusers' AutoencoderKL keys)."""
        n = len(self.vae_channels)
        return {"_class_name": "FlaxAutoencoderKL", "_diffusers_version": "0.39.0",
                "in_channels": 3, "out_channels": 3, "latent_channels": self.latent_channels,
                "block_out_channels": list(self.vae_channels),
                "layers_per_block": self.vae_layers, "norm_num_groups": self.vae_groups,
                "down_block_types": ["DownEncoderBlock2D"] * n,
                "up_block_types": ["UpDecoderBlock2D"] * n, "act_fn": "silu",
                "sample_size": self.image_size, "scaling_factor": float(scaling_factor)}


def build_modules(cfg: ScenesModelConfig, dtype: Any = jnp.float32
                  ) -> tuple[UNet2DConditionModel, CLIPTextModel, AutoencoderKL]:
    """(unet, text encoder, vae) linen modules, with the numerics the `sd` adapter gives a
    folder of Flax msgpack weights (diffusers' Flax port, its einsum attention)."""
    unet = UNet2DConditionModel(UNetConfig.from_diffusers(cfg.unet_config(), diffusers_flax=True),
                                dtype=dtype, attention="diffusers")
    text = CLIPTextModel(CLIPTextConfig.from_transformers(cfg.text_config()), dtype=dtype)
    vae = AutoencoderKL(VAEConfig.from_diffusers(cfg.vae_config()), dtype=dtype)
    return unet, text, vae


def init_params(cfg: ScenesModelConfig, seed: int) -> dict[str, Any]:
    """Fresh {"unet", "text_encoder", "vae"} float32 numpy params drawn on the host (the shapes
    model's rule, `jaxsteer.models.tiny.random_params`: no compile of the modules' init)."""
    unet, text, vae = build_modules(cfg)
    key = jax.random.key(seed)
    return {"unet": random_params(unet.init_weights, key, seed),
            "text_encoder": random_params(text.init_weights, key, seed + 1),
            "vae": random_params(vae.init_weights, key, seed + 2)}


def parameter_counts(cfg: ScenesModelConfig) -> dict[str, int]:
    """Parameters of each network (from shapes only: nothing is initialised)."""
    unet, text, vae = build_modules(cfg)
    key = jax.random.key(0)
    return {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(f, key)))
            for name, f in (("unet", unet.init_weights), ("text_encoder", text.init_weights),
                            ("vae", vae.init_weights))}


def export(folder: str | Path, cfg: ScenesModelConfig, params: Any, scaling_factor: float,
           dtype: str = "float16", info: dict | None = None) -> Path:
    """Writes the pipeline folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/,
    model_index.json, training.json); replaces ``folder`` at the end.

    Args:
      params: {"unet", "text_encoder", "vae"} (the EMA weights when training).
      scaling_factor: the latents' scale (1 / their std), as SD's VAE config carries it.
      dtype: of the weight files ("float16" halves them; loaders cast to their dtype). The
        default model is 4.2 M parameters: 8.4 MB in float16, inside the package's 10 MB.
    """
    from flax.serialization import msgpack_serialize

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    params = jax.device_get(params)
    cast = lambda tree, d: jax.tree.map(lambda x: np.asarray(x, jnp.dtype(d)), tree)  # noqa: E731
    write_json(tmp / "unet" / "config.json", cfg.unet_config())
    atomic_write_bytes(tmp / "unet" / "diffusion_flax_model.msgpack",
                       msgpack_serialize(cast(params["unet"], dtype)))
    write_json(tmp / "vae" / "config.json", cfg.vae_config(scaling_factor))
    atomic_write_bytes(tmp / "vae" / "diffusion_flax_model.msgpack",
                       msgpack_serialize(cast(params["vae"], dtype)))
    write_json(tmp / "text_encoder" / "config.json", cfg.text_config())
    atomic_write_bytes(tmp / "text_encoder" / "flax_model.msgpack",
                       msgpack_serialize(cast(params["text_encoder"], dtype)))
    write_tokenizer(tmp / "tokenizer")
    write_json(tmp / "scheduler" / "scheduler_config.json", SCHEDULER)
    write_json(tmp / "model_index.json", {**MODEL_INDEX,
                                          "vae": ["diffusers", "FlaxAutoencoderKL"]})
    write_json(tmp / "training.json", {"model": dataclasses.asdict(cfg),
                                       "scaling_factor": float(scaling_factor), **(info or {})})
    return publish_folder(tmp, folder)


__all__ = ["ScenesModelConfig", "build_modules", "export", "init_params", "parameter_counts"]
