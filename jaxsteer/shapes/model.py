"""The shapes model: a pixel-space UNet and a small CLIP text encoder, and its folder.

The model uses the same networks as the real SD models (jaxsteer's `UNet2DConditionModel` and
`CLIPTextModel`, transformers' `CLIPTokenizer`) and is saved in diffusers' pipeline layout
without a ``vae/`` folder, which the `sd` adapter reads as "pixel space": latents are the
images, [b, 3, H, W] in [-1, 1]. The folder is the one diffusers 0.39's Flax classes wrote
(configs in their keys, weights as Flax msgpack of the same parameter tree), so models trained
before jaxsteer had its own networks and models trained now load the same way.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.serialization import msgpack_serialize

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.nn.clip import CLIPTextConfig, CLIPTextModel
from jaxsteer.models.nn.load import load_clip, load_unet
from jaxsteer.models.nn.unet import UNet2DConditionModel, UNetConfig
from jaxsteer.records import atomic_write_bytes, publish_folder, write_json
from jaxsteer.shapes.tokenizer import MAX_LENGTH, build_vocab, write_tokenizer

# DDPM's linear schedule (Ho et al. 2020), the usual choice for 32 x 32 pixel-space models: its
# last step is pure noise (alpha_bar = 4e-5), so sampling from N(0, 1) matches training.
# "trailing" spacing starts every few-step schedule at t = 999 for the same reason.
SCHEDULER = {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.39.0",
    "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001,
    "beta_end": 0.02, "prediction_type": "epsilon", "set_alpha_to_one": True, "steps_offset": 0,
    "timestep_spacing": "trailing", "clip_sample": False, "trained_betas": None,
}
# The keys diffusers 0.39's FlaxUNet2DConditionModel and transformers 4's FlaxCLIPTextModel
# wrote (the bundled model's files), with their defaults; the versions name that format.
_UNET_DEFAULTS = {
    "_class_name": "FlaxUNet2DConditionModel", "_diffusers_version": "0.39.0",
    "addition_embed_type": None, "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": None, "dropout": 0.0, "flip_sin_to_cos": True, "freq_shift": 0,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "num_attention_heads": None,
    "only_cross_attention": False, "projection_class_embeddings_input_dim": None,
    "split_head_dim": False, "transformer_layers_per_block": 1, "use_linear_projection": False,
    "use_memory_efficient_attention": False,
}
_TEXT_DEFAULTS = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "hidden_act": "quick_gelu",
    "initializer_factor": 1.0, "initializer_range": 0.02, "layer_norm_eps": 1e-05,
    "model_type": "clip_text_model", "transformers_version": "4.57.6",
}
MODEL_INDEX = {
    "_class_name": "FlaxStableDiffusionPipeline", "_diffusers_version": "0.39.0",
    "text_encoder": ["transformers", "FlaxCLIPTextModel"],
    "unet": ["diffusers", "FlaxUNet2DConditionModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "scheduler": ["diffusers", "FlaxDDIMScheduler"],
}


@dataclasses.dataclass(frozen=True)
class ShapesModelConfig:
    """Architecture of the shapes model (hashable: it keys the compiled train step)."""

    image_size: int = opt(32, "image side in pixels (32 bundled; 64 works)")
    channels: tuple[int, ...] = opt((32, 64, 128), "UNet channels per resolution level "
                                    "(multiples of 32: the UNet's GroupNorm has 32 groups)")
    attention_levels: tuple[int, ...] = opt((1, 2), "levels with self+cross attention (0 = full "
                                            "size)")
    layers_per_block: int = opt(1, "ResNet layers per UNet block")
    heads: int = opt(4, "attention heads in the UNet")
    text_width: int = opt(128, "text encoder width D (the differentiated embedding's size)")
    text_layers: int = opt(3, "text encoder transformer layers")
    text_heads: int = opt(4, "text encoder attention heads")

    def __post_init__(self):
        if any(c % 32 for c in self.channels):
            raise UserError(f"--model.channels must be multiples of 32, got {self.channels}")
        if any(not 0 <= i < len(self.channels) for i in self.attention_levels):
            raise UserError(f"--model.attention-levels must index the {len(self.channels)} levels")
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise UserError("--model.image-size must be divisible by 2 per downsampling level")

    def unet_config(self) -> dict[str, Any]:
        """The UNet's ``config.json`` (diffusers' keys)."""
        down = ["CrossAttnDownBlock2D" if i in self.attention_levels else "DownBlock2D"
                for i in range(len(self.channels))]
        up = [b.replace("Down", "Up") for b in reversed(down)]
        return {**_UNET_DEFAULTS, "sample_size": self.image_size, "in_channels": 3,
                "out_channels": 3, "block_out_channels": list(self.channels),
                "layers_per_block": self.layers_per_block, "down_block_types": down,
                "up_block_types": up, "attention_head_dim": self.heads,
                "cross_attention_dim": self.text_width}

    def text_config(self) -> dict[str, Any]:
        """The text encoder's ``config.json`` (transformers' keys)."""
        vocab, _ = build_vocab()
        return {**_TEXT_DEFAULTS, "vocab_size": len(vocab), "hidden_size": self.text_width,
                "intermediate_size": 4 * self.text_width,
                "num_hidden_layers": self.text_layers, "num_attention_heads": self.text_heads,
                "max_position_embeddings": MAX_LENGTH, "bos_token_id": vocab["<|startoftext|>"],
                "eos_token_id": vocab["<|endoftext|>"], "pad_token_id": vocab["<|endoftext|>"],
                "projection_dim": self.text_width}


def build_modules(cfg: ShapesModelConfig, dtype: Any = jnp.float32
                  ) -> tuple[UNet2DConditionModel, CLIPTextModel]:
    """(unet, text encoder) linen modules; ``dtype`` is the compute dtype, params stay float32.

    The UNet has the numerics of diffusers' Flax port (``diffusers_flax`` and its einsum
    attention), which the bundled model was trained with: training further from it continues
    the same function, and the `sd` adapter on the CPU computes exactly what training did.
    """
    unet_cfg = UNetConfig.from_diffusers(cfg.unet_config(), diffusers_flax=True)
    unet = UNet2DConditionModel(unet_cfg, dtype=dtype, attention="diffusers")
    text = CLIPTextModel(CLIPTextConfig.from_transformers(cfg.text_config()), dtype=dtype)
    return unet, text


def init_params(cfg: ShapesModelConfig, seed: int) -> dict[str, Any]:
    """Fresh {"unet", "text_encoder"} float32 numpy params, drawn on the host.

    Why not the modules' own ``init``: on CPU it compiles for 15-45 s (it traces a forward pass
    and hundreds of initialiser programs), longer than the whole test budget. The rule is
    Flax's default: LeCun-normal kernels, N(0, 0.02) embeddings (CLIP's initializer_range),
    unit norm scales, zero biases.
    """
    unet, text = build_modules(cfg)
    shapes = {"unet": jax.eval_shape(unet.init_weights, jax.random.key(0)),
              "text_encoder": jax.eval_shape(text.init_weights, jax.random.key(0))}
    rng = np.random.default_rng(seed)

    def leaf(path: tuple, s: jax.ShapeDtypeStruct) -> np.ndarray:
        name = path[-1].key
        if name == "kernel":
            std = 1.0 / np.sqrt(np.prod(s.shape[:-1]))
        elif name == "embedding":
            std = 0.02
        else:
            return np.full(s.shape, 1.0 if name == "scale" else 0.0, np.float32)
        return (rng.standard_normal(s.shape) * std).astype(np.float32)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


def encode_text(text: CLIPTextModel, params: Any, ids_bt: jax.Array) -> jax.Array:
    """[b, t] token ids -> [b, t, D] last hidden state, called exactly as the `sd` adapter does
    (attention mask all ones: padding tokens are attended to, like SD's CLIP)."""
    pos_bt = jnp.broadcast_to(jnp.arange(ids_bt.shape[1]), ids_bt.shape)
    return text.apply({"params": params}, ids_bt, jnp.ones_like(ids_bt),
                      pos_bt).last_hidden_state


def alphas_cumprod(sched: dict[str, Any] = SCHEDULER) -> np.ndarray:
    """[T] float32 cumulative alphas of a linear or scaled-linear beta schedule."""
    n, lo, hi = sched["num_train_timesteps"], sched["beta_start"], sched["beta_end"]
    if sched["beta_schedule"] == "linear":
        betas = np.linspace(lo, hi, n, dtype=np.float64)
    elif sched["beta_schedule"] == "scaled_linear":
        betas = np.linspace(lo ** 0.5, hi ** 0.5, n, dtype=np.float64) ** 2
    else:
        raise UserError(f"unsupported beta_schedule {sched['beta_schedule']!r}")
    return np.cumprod(1.0 - betas).astype(np.float32)


def export(folder: str | Path, cfg: ShapesModelConfig, params: Any, unet_dtype: str = "float16",
           info: dict | None = None) -> Path:
    """Writes a diffusers pipeline folder (no vae: pixel space); replaces ``folder`` at the end.

    The files are the ones diffusers 0.39 / transformers 4 wrote (``config.json`` in their keys,
    ``diffusion_flax_model.msgpack`` / ``flax_model.msgpack`` holding
    ``flax.serialization.msgpack_serialize`` of the parameter tree), without either library.

    Args:
      params: {"unet", "text_encoder"} params (the EMA weights when training).
      unet_dtype: "float16" halves the UNet's file; loaders cast to their compute dtype. The
        text encoder stays float32 (it is small).
      info: extra JSON written to ``training.json`` (config, steps, losses).
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    params = jax.device_get(params)
    # jax.tree.map also sorts every dict's keys: the byte order diffusers' save_pretrained wrote.
    unet_p = jax.tree.map(lambda x: np.asarray(x, jnp.dtype(unet_dtype)), params["unet"])
    text_p = jax.tree.map(lambda x: np.asarray(x, np.float32), params["text_encoder"])
    write_json(tmp / "unet" / "config.json", cfg.unet_config())
    atomic_write_bytes(tmp / "unet" / "diffusion_flax_model.msgpack", msgpack_serialize(unet_p))
    write_json(tmp / "text_encoder" / "config.json", cfg.text_config())
    atomic_write_bytes(tmp / "text_encoder" / "flax_model.msgpack", msgpack_serialize(text_p))
    write_tokenizer(tmp / "tokenizer")
    write_json(tmp / "scheduler" / "scheduler_config.json", SCHEDULER)
    write_json(tmp / "model_index.json", MODEL_INDEX)
    write_json(tmp / "training.json", {"model": dataclasses.asdict(cfg), **(info or {})})
    return publish_folder(tmp, folder)


@dataclasses.dataclass(frozen=True, eq=False)
class ShapesPipeline:
    """A loaded shapes pipeline: modules, float32 params, tokenizer and schedule."""

    unet: Any
    text: Any
    tokenizer: Any
    params: dict[str, Any]
    alphas_cumprod: np.ndarray
    image_size: int

    def token_ids(self, captions: list[str]) -> np.ndarray:
        """[b, 16] int32 ids, padded with the pad token (the empty caption is bos, eos, pad...)."""
        tok = self.tokenizer(list(captions), padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length)
        return np.asarray(tok["input_ids"], np.int32)


def load(folder: str | Path) -> ShapesPipeline:
    """Loads a folder written by `export` (or by diffusers' Flax classes) with jaxsteer's
    loaders."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    if not (folder / "model_index.json").exists():
        raise UserError(f"{folder} is not a shapes pipeline folder (no model_index.json)")
    unet, unet_p = load_unet(folder / "unet", jnp.float32)
    text, text_p = load_clip(folder / "text_encoder", jnp.float32, with_projection=False)
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    return ShapesPipeline(unet, text, CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
                          {"unet": unet_p, "text_encoder": text_p}, alphas_cumprod(sched),
                          int(unet.config.sample_size))
