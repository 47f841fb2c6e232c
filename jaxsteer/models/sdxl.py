"""The `sdxl` family: SDXL, SDXL-Turbo, SDXL with the DMD2 4-step UNet.

Two CLIP text encoders; the differentiated embedding is both encoders' penultimate hidden states
concatenated ([77, 768 + 1280]). The pooled embedding of the second encoder and the micro-
conditioning time ids go to the UNet as ``added_cond_kwargs`` and are not differentiated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxsteer.models.base import ModelBundle, TextCond, Tokens, schedule_from_config
from jaxsteer.models.nn.load import load_clip, load_unet, load_vae
from jaxsteer.models.sd import SDModel, fingerprint_of
from jaxsteer.models.tokens import tokenize
from jaxsteer.models.weights import dtype_from_name, read_config, resolve_folder


@dataclasses.dataclass(frozen=True)
class SDXLModel(SDModel):
    text_encoder_2: Any = dataclasses.field(default=None, compare=False)
    tokenizer_2: Any = dataclasses.field(default=None, compare=False, hash=False)
    # (original h, original w, crop top, crop left, target h, target w), in pixels.
    time_ids: tuple[float, ...] = (1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0)
    family: str = "sdxl"

    def tokenize(self, prompt: str, allow_empty: bool = False) -> Tokens:
        return tokenize((self.tokenizer, self.tokenizer_2), prompt, self.max_tokens, allow_empty)

    def encode_text(self, params: Any, ids_bet: jax.Array) -> TextCond:
        out1 = self.text_encoder.apply({"params": params["text_encoder"]}, ids_bet[:, 0])
        out2 = self.text_encoder_2.apply({"params": params["text_encoder_2"]}, ids_bet[:, 1])
        emb = jnp.concatenate([out1.penultimate, out2.penultimate], axis=-1)
        return TextCond(emb=emb.astype(jnp.float32),
                        extra={"pooled": out2.text_embeds.astype(jnp.float32)})

    def predict(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, cond: TextCond) -> jax.Array:
        dtype = self.unet.dtype
        b = x_bchw.shape[0]
        added = {"text_embeds": cond.extra["pooled"].astype(dtype),
                 "time_ids": jnp.broadcast_to(jnp.asarray(self.time_ids, dtype), (b, 6))}
        return self.unet_call(params, x_bchw, t_b, cond.emb, added)


def load(model: str, dtype: str = "float32", revision: str | None = None,
         allow_pickle: bool = False, attention: str = "diffusers",
         remat_policy: str = "none") -> ModelBundle:
    """Loads an SDXL pipeline from a hub id or a local folder in diffusers' layout."""
    from transformers import CLIPTokenizer

    folder = resolve_folder(model, revision, allow_pickle)
    jdtype = dtype_from_name(dtype)
    unet, unet_p = load_unet(folder / "unet", jdtype, allow_pickle, attention=attention,
                             remat=remat_policy)
    te1, te1_p = load_clip(folder / "text_encoder", jdtype, allow_pickle, with_projection=False)
    te2, te2_p = load_clip(folder / "text_encoder_2", jdtype, allow_pickle, with_projection=True)
    vae, vae_p = load_vae(folder / "vae", jdtype, allow_pickle)
    params = {"unet": unet_p, "text_encoder": te1_p, "text_encoder_2": te2_p, "vae": vae_p}
    tok1 = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    tok2 = CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2"))
    size = int(unet.config.sample_size)
    pixels = float(size * 2 ** (len(vae.config.block_out_channels) - 1))
    definition = SDXLModel(
        unet=unet, text_encoder=te1, vae=vae,
        fingerprint=fingerprint_of(unet, te1, te2, vae, dtype=dtype),
        schedule=schedule_from_config(read_config(folder, "scheduler", "scheduler_config.json")),
        embed_dim=int(te1.config.hidden_size) + int(te2.config.hidden_size),
        max_tokens=int(tok1.model_max_length),
        latent_shape=(int(unet.config.in_channels), size, size),
        scaling_factor=float(vae.config.scaling_factor), tokenizer=tok1, text_encoder_2=te2,
        tokenizer_2=tok2, time_ids=(pixels, pixels, 0.0, 0.0, pixels, pixels),
        attention=attention, remat_policy=remat_policy)
    info = {"model": model, "family": "sdxl", "revision": revision, "dtype": dtype,
            "attention": attention, "remat_policy": remat_policy,
            "folder": str(Path(folder).resolve())}
    return ModelBundle(definition, params, info)
