"""A tiny random Flux pipeline (``tiny-flux``), written to a folder in diffusers' layout.

Like `models.tiny`: configs as diffusers / transformers write them, PyTorch-named safetensors
(the transformer and T5 sharded with an index, as the FLUX.1 repositories ship them), made with
jaxsteer's own modules. The T5 tokenizer is a character-level Unigram ``tokenizer.json`` (every
word starts with a ``▁x`` piece and continues one character a piece), the CLIP tokenizer the
character BPE of `models.tiny`.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import jax
import numpy as np

from jaxsteer.models.nn import AutoencoderKL, CLIPTextConfig, CLIPTextModel
from jaxsteer.models.nn.convert import flax_to_pt, write_safetensors
from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel
from jaxsteer.models.nn.load_flux import flux_vae_config
from jaxsteer.models.nn.t5 import T5Config, T5EncoderModel
from jaxsteer.models.tiny import _clip_config, random_params, write_char_tokenizer

SCHNELL_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler",
                     "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False,
                     "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                     "max_image_seq_len": 4096}
DEV_SCHEDULER = SCHNELL_SCHEDULER | {"shift": 3.0, "use_dynamic_shifting": True}


def write_t5_tokenizer(folder: Path, max_length: int) -> int:
    """A T5-style Unigram tokenizer.json of single characters; returns the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + ".,!?'-"
    pieces = ["<pad>", "</s>", "<unk>", "\u2581"] + ["\u2581" + c for c in chars] + list(chars)
    vocab = [(p, 0.0 if i < 3 else -1.0) for i, p in enumerate(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "model_max_length": max_length, "pad_token": "<pad>",
        "eos_token": "</s>", "unk_token": "<unk>", "extra_ids": 0}))
    return len(pieces)


def _write(sub: Path, config: dict, module, seed: int, stem: str, shards: int = 1,
           rename: dict | None = None, vae: bool = False) -> None:
    """config.json and random weights as PyTorch-named safetensors, ``shards`` files with an
    index when more than one."""
    sub.mkdir(parents=True, exist_ok=True)
    (sub / "config.json").write_text(json.dumps(config, indent=1))
    state = flax_to_pt(random_params(module.init_weights, jax.random.key(seed), seed), vae=vae)
    for old, new in (rename or {}).items():
        state = {k.replace(old, new): v for k, v in state.items()}
    if shards == 1:
        write_safetensors(sub / f"{stem}.safetensors", state)
        return
    names = sorted(state)
    weight_map = {}
    for i, part in enumerate(np.array_split(np.arange(len(names)), shards)):
        file = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(sub / file, {names[j]: state[names[j]] for j in part})
        weight_map.update({names[j]: file for j in part})
    (sub / f"{stem}.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": int(sum(a.nbytes for a in state.values()))},
         "weight_map": weight_map}))


def build_tiny_flux(folder: str | Path, seed: int = 0, dev: bool = False, sample_size: int = 16,
                    t5_tokens: int = 48) -> Path:
    """Writes a tiny random Flux pipeline ([schnell]-like; ``dev`` adds the guidance embedding
    and the dynamic shift). Latents are 4 x sample_size/2 x sample_size/2."""
    folder = Path(folder)
    width = 32
    write_char_tokenizer(folder / "tokenizer")
    vocab = len(json.loads((folder / "tokenizer" / "vocab.json").read_text()))
    te_cfg = _clip_config(vocab, width, 77, "CLIPTextModel")
    _write(folder / "text_encoder", te_cfg, CLIPTextModel(CLIPTextConfig.from_transformers(te_cfg)),
           seed, "model")

    t5_vocab = write_t5_tokenizer(folder / "tokenizer_2", t5_tokens)
    t5_cfg = {"architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": t5_vocab,
              "d_model": width, "d_kv": 8, "d_ff": 2 * width, "num_layers": 2, "num_heads": 4,
              "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
              "layer_norm_epsilon": 1e-6, "feed_forward_proj": "gated-gelu",
              "is_gated_act": True, "dense_act_fn": "gelu_new", "pad_token_id": 0,
              "eos_token_id": 1}
    _write(folder / "text_encoder_2", t5_cfg, T5EncoderModel(T5Config.from_transformers(t5_cfg)),
           seed + 1, "model", shards=2, rename={".wi.0.": ".wi_0.", ".wi.1.": ".wi_1."})

    latent = 4
    tr_cfg = {"_class_name": "FluxTransformer2DModel", "patch_size": 1,
              "in_channels": 4 * latent, "out_channels": None, "num_layers": 1,
              "num_single_layers": 1, "attention_head_dim": 8, "num_attention_heads": 2,
              "joint_attention_dim": width, "pooled_projection_dim": width,
              "guidance_embeds": dev, "axes_dims_rope": [2, 2, 4]}
    _write(folder / "transformer", tr_cfg, FluxTransformer2DModel(FluxConfig.from_diffusers(
        tr_cfg)), seed + 2, "diffusion_pytorch_model", shards=2)

    vae_cfg = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
               "latent_channels": latent, "block_out_channels": [16, 32], "layers_per_block": 1,
               "norm_num_groups": 8, "down_block_types": ["DownEncoderBlock2D"] * 2,
               "up_block_types": ["UpDecoderBlock2D"] * 2, "sample_size": sample_size,
               "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_quant_conv": False,
               "use_post_quant_conv": False, "mid_block_add_attention": True}
    _write(folder / "vae", vae_cfg, AutoencoderKL(flux_vae_config(vae_cfg)[0]), seed + 3,
           "diffusion_pytorch_model", vae=True)
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(DEV_SCHEDULER if dev else SCHNELL_SCHEDULER))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "FluxPipeline", "_diffusers_version": "0.35.0",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"]}))
    return folder
