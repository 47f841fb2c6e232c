"""Tiny random SD-shaped pipelines, written to a folder in diffusers' layout.

Tests and the offline demo load them through exactly the path a user's hub model takes
(`jaxsteer.models.load`): configs as diffusers / transformers write them, weights as PyTorch-layout
safetensors, made with jaxsteer's own modules (no diffusers or transformers model classes).
The tokenizer is a character-level CLIP BPE the code writes itself, so
every word spans several tokens: a good test of which rows belong to which word.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import jax
import numpy as np

from jaxsteer.models.nn import (
    AutoencoderKL,
    CLIPTextConfig,
    CLIPTextModel,
    UNet2DConditionModel,
    UNetConfig,
    VAEConfig,
)
from jaxsteer.models.nn.convert import flax_to_pt, write_safetensors

_SCHEDULER = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "epsilon",
    "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    "clip_sample": False,
}


def random_params(init, key: jax.Array, seed: int) -> dict:
    """Random weights with the shapes ``init(key)`` would give, without compiling ``init``.

    Compiling a UNet's initialiser takes most of a minute on a CPU; tracing it for shapes takes
    seconds. Kernels get fan-in scaled normals, norms scale 1, biases 0.
    """
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = str(path[-1].key) if hasattr(path[-1], "key") else str(path[-1])
        if name in ("scale",):
            return np.ones(leaf.shape, leaf.dtype)
        if name in ("bias",):
            return np.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1])) or 1
        std = 0.02 if name == "embedding" else fan_in ** -0.5
        return (rng.standard_normal(leaf.shape) * std).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(init, key))


def write_char_tokenizer(folder: Path, max_length: int = 77) -> None:
    """A CLIPTokenizer vocabulary of single characters (no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + ".,!?'-"
    vocab = ["<|startoftext|>", "<|endoftext|>"] + list(chars) + [c + "</w>" for c in chars]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "model_max_length": max_length, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}))


def _save(sub: Path, config: dict, module, key: jax.Array, seed: int, weights: str,
          vae: bool = False) -> None:
    """config.json and random weights in PyTorch layout (safetensors), as the libraries save."""
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "config.json").write_text(json.dumps(config, indent=1))
    params = random_params(module.init_weights, key, seed)
    write_safetensors(sub / weights, flax_to_pt(params, vae=vae))


def _clip_config(vocab: int, width: int, max_tokens: int, architecture: str) -> dict:
    return {"architectures": [architecture], "model_type": "clip_text_model",
            "vocab_size": vocab, "hidden_size": width, "intermediate_size": 2 * width,
            "num_hidden_layers": 2, "num_attention_heads": 2,
            "max_position_embeddings": max_tokens, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
            "projection_dim": width}


def build_tiny_sd(folder: str | Path, seed: int = 0, vae: bool = True, width: int = 32,
                  sample_size: int = 8, max_tokens: int = 77, steps_offset: int = 1) -> Path:
    """Writes a tiny random SD pipeline (CLIP text, cross-attention UNet, optional VAE)."""
    folder = Path(folder)
    key_t, key_u, key_v = jax.random.split(jax.random.key(seed), 3)
    write_char_tokenizer(folder / "tokenizer", max_tokens)
    vocab = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    te_cfg = _clip_config(vocab, width, max_tokens, "CLIPTextModel")
    _save(folder / "text_encoder", te_cfg,
          CLIPTextModel(CLIPTextConfig.from_transformers(te_cfg)), key_t, seed, "model.safetensors")

    channels = 4 if vae else 3
    unet_cfg = {"_class_name": "UNet2DConditionModel", "sample_size": sample_size,
                "in_channels": channels, "out_channels": channels, "block_out_channels": [32, 64],
                "layers_per_block": 1, "cross_attention_dim": width, "attention_head_dim": 8,
                "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
    _save(folder / "unet", unet_cfg, UNet2DConditionModel(UNetConfig.from_diffusers(unet_cfg)),
          key_u, seed + 1, "diffusion_pytorch_model.safetensors")
    names = {"text_encoder": ["transformers", "CLIPTextModel"],
             "unet": ["diffusers", "UNet2DConditionModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "DDIMScheduler"]}
    if vae:
        vae_cfg = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
                   "latent_channels": 4, "block_out_channels": [16, 32], "layers_per_block": 1,
                   "norm_num_groups": 8, "down_block_types": ["DownEncoderBlock2D"] * 2,
                   "up_block_types": ["UpDecoderBlock2D"] * 2, "sample_size": 2 * sample_size,
                   "scaling_factor": 0.18215}
        _save(folder / "vae", vae_cfg, AutoencoderKL(VAEConfig.from_diffusers(vae_cfg)), key_v,
              seed + 2, "diffusion_pytorch_model.safetensors", vae=True)
        names["vae"] = ["diffusers", "AutoencoderKL"]
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(_SCHEDULER | {"steps_offset": steps_offset}))
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.39.0"} | names))
    return folder


def build_tiny_sdxl(folder: str | Path, seed: int = 0, width: int = 32,
                    sample_size: int = 8) -> Path:
    """Writes a tiny random SDXL pipeline: two text encoders, a text-time UNet, a VAE."""
    folder = Path(folder)
    build_tiny_sd(folder, seed=seed, width=width, sample_size=sample_size)  # encoder 1, VAE, ...
    write_char_tokenizer(folder / "tokenizer_2")
    vocab = len(json.loads((folder / "tokenizer_2" / "vocab.json").read_text()))
    width2, time_dim = 2 * width, 8
    cfg2 = _clip_config(vocab, width2, 77, "CLIPTextModelWithProjection")
    _save(folder / "text_encoder_2", cfg2,
          CLIPTextModel(CLIPTextConfig.from_transformers(cfg2, with_projection=True)),
          jax.random.key(seed + 10), seed + 10, "model.safetensors")
    unet_cfg = {"_class_name": "UNet2DConditionModel", "sample_size": sample_size,
                "in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64],
                "layers_per_block": 1, "cross_attention_dim": width + width2,
                "attention_head_dim": 8,
                "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
                "addition_embed_type": "text_time", "addition_time_embed_dim": time_dim,
                "projection_class_embeddings_input_dim": width2 + 6 * time_dim,
                "use_linear_projection": True}
    _save(folder / "unet", unet_cfg, UNet2DConditionModel(UNetConfig.from_diffusers(unet_cfg)),
          jax.random.key(seed + 11), seed + 11, "diffusion_pytorch_model.safetensors")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionXLPipeline",
                 text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                 tokenizer_2=["transformers", "CLIPTokenizer"])
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder
