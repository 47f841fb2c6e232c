"""Tiny random SD-shaped pipelines, written to a folder in diffusers' layout.

Tests and the offline demo load them through exactly the path a user's hub model takes
(`jaxsteer.models.load`). The tokenizer is a character-level CLIP BPE the code writes itself, so
every word spans several tokens: a good test of which rows belong to which word.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import jax
import numpy as np

_SCHEDULER = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "epsilon",
    "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading", "clip_sample": False,
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


def build_tiny_sd(folder: str | Path, seed: int = 0, vae: bool = True, width: int = 32,
                  sample_size: int = 8, max_tokens: int = 77, steps_offset: int = 1) -> Path:
    """Writes a tiny random SD pipeline (CLIP text, cross-attention UNet, optional VAE)."""
    from diffusers import FlaxAutoencoderKL, FlaxUNet2DConditionModel
    from transformers import CLIPTextConfig, FlaxCLIPTextModel

    folder = Path(folder)
    key_t, key_u, key_v = jax.random.split(jax.random.key(seed), 3)
    write_char_tokenizer(folder / "tokenizer", max_tokens)
    vocab = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    te_cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width,
                            num_hidden_layers=2, num_attention_heads=2,
                            max_position_embeddings=max_tokens, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1, projection_dim=width)
    te = FlaxCLIPTextModel(te_cfg, _do_init=False)
    te_params = random_params(lambda k: te.init_weights(k, (1, max_tokens)), key_t, seed)
    te.save_pretrained(folder / "text_encoder", params=te_params)

    channels = 4 if vae else 3
    unet = FlaxUNet2DConditionModel(
        sample_size=sample_size, in_channels=channels, out_channels=channels,
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=width,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    unet.save_pretrained(folder / "unet", params=random_params(unet.init_weights, key_u, seed + 1))
    names = {"text_encoder": ["transformers", "FlaxCLIPTextModel"],
             "unet": ["diffusers", "FlaxUNet2DConditionModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "FlaxDDIMScheduler"]}
    if vae:
        ae = FlaxAutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                               block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                               down_block_types=("DownEncoderBlock2D",) * 2,
                               up_block_types=("UpDecoderBlock2D",) * 2,
                               sample_size=2 * sample_size)
        ae.save_pretrained(folder / "vae", params=random_params(ae.init_weights, key_v, seed + 2))
        names["vae"] = ["diffusers", "FlaxAutoencoderKL"]
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(_SCHEDULER | {"steps_offset": steps_offset}))
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "FlaxStableDiffusionPipeline", "_diffusers_version": "0.39.0"} | names))
    return folder


def build_tiny_sdxl(folder: str | Path, seed: int = 0, width: int = 32, sample_size: int = 8) -> Path:
    """Writes a tiny random SDXL pipeline: two text encoders, a text-time UNet, a VAE."""
    from diffusers import FlaxUNet2DConditionModel
    from transformers import CLIPTextConfig, FlaxCLIPTextModelWithProjection

    folder = Path(folder)
    build_tiny_sd(folder, seed=seed, width=width, sample_size=sample_size)  # encoder 1, VAE, ...
    write_char_tokenizer(folder / "tokenizer_2")
    vocab = len(json.loads((folder / "tokenizer_2" / "vocab.json").read_text()))
    width2, time_dim = 2 * width, 8
    cfg2 = CLIPTextConfig(vocab_size=vocab, hidden_size=width2, intermediate_size=2 * width2,
                          num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=width2)
    te2 = FlaxCLIPTextModelWithProjection(cfg2, _do_init=False)
    te2.save_pretrained(folder / "text_encoder_2", params=random_params(
        lambda k: te2.init_weights(k, (1, 77)), jax.random.key(seed + 10), seed + 10))
    unet = FlaxUNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1, cross_attention_dim=width + width2, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, projection_class_embeddings_input_dim=width2 + 6 * time_dim,
        use_linear_projection=True)
    unet.save_pretrained(folder / "unet", params=random_params(
        unet.init_weights, jax.random.key(seed + 11), seed + 11))
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="FlaxStableDiffusionXLPipeline",
                 text_encoder_2=["transformers", "FlaxCLIPTextModelWithProjection"],
                 tokenizer_2=["transformers", "CLIPTokenizer"])
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder
