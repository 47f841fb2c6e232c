"""The `sd` family: SD 1.x, SD 2.x, SD-Turbo (one CLIP text encoder, UNet, optional VAE).

A pipeline folder without ``vae/`` is a pixel-space model (the bundled shapes model): latents are
the images themselves, in [-1, 1], channels first.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxsteer.models.base import ModelBundle, NoiseSchedule, TextCond, Tokens, schedule_from_config
from jaxsteer.models.tokens import tokenize
from jaxsteer.models.weights import (dtype_from_name, load_diffusers_module,
                                     load_transformers_model, read_config, resolve_folder)


@dataclasses.dataclass(frozen=True)
class SDModel:
    """SD-family definition: modules and constants only (weights live in ``params``)."""

    # Modules are compared through ``fingerprint`` (their configs and dtype): loaded modules hold
    # lists and transformers configs, which do not hash, and two loads of one model should share
    # compiled programs.
    unet: Any = dataclasses.field(compare=False)
    text_encoder: Any = dataclasses.field(compare=False)
    vae: Any | None = dataclasses.field(compare=False)
    fingerprint: str
    schedule: NoiseSchedule
    embed_dim: int
    max_tokens: int
    latent_shape: tuple[int, int, int]
    scaling_factor: float = 1.0
    tokenizer: Any = dataclasses.field(default=None, compare=False, hash=False)
    family: str = "sd"
    # How the UNet's attention is traced (models/attention.py): diffusers | xla | cudnn | auto.
    attention: str = "diffusers"
    # What the UNet call keeps for the backward pass (models/remat.py): none | matmuls | ...
    remat_policy: str = "none"

    def tokenize(self, prompt: str, allow_empty: bool = False) -> Tokens:
        return tokenize((self.tokenizer,), prompt, self.max_tokens, allow_empty)

    def encode_text(self, params: Any, ids_bet: jax.Array) -> TextCond:
        ids_bt = ids_bet[:, 0]
        pos_bt = jnp.broadcast_to(jnp.arange(ids_bt.shape[1]), ids_bt.shape)
        out = self.text_encoder.apply({"params": params["text_encoder"]}, ids_bt,
                                      jnp.ones_like(ids_bt), pos_bt)
        return TextCond(emb=out[0].astype(jnp.float32))

    def predict(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, cond: TextCond) -> jax.Array:
        return self.unet_call(params, x_bchw, t_b, cond.emb, None)

    def unet_call(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, emb: jax.Array,
                  added: dict | None) -> jax.Array:
        """The UNet in its own dtype, traced with this definition's attention and remat."""
        from jaxsteer.models.attention import patched
        from jaxsteer.models.remat import checkpoint_policy

        dtype = self.unet.dtype

        def call(unet_params, x, t, emb, added):
            with patched(self.attention, self.remat_policy == "blocks"):
                return self.unet.apply({"params": unet_params}, x.astype(dtype), t,
                                       emb.astype(dtype), added_cond_kwargs=added,
                                       return_dict=False)[0]

        policy = checkpoint_policy(self.remat_policy)
        if policy is not None:
            call = jax.checkpoint(call, policy=policy)
        return call(params["unet"], x_bchw, t_b, emb, added).astype(x_bchw.dtype)

    def encode_image(self, params: Any, images_bhwc: jax.Array) -> jax.Array:
        x = jnp.transpose(images_bhwc, (0, 3, 1, 2))
        if self.vae is None:
            return x
        dist = self.vae.apply({"params": params["vae"]}, x.astype(self.vae.dtype),
                              method=self.vae.encode).latent_dist
        return (dist.mean * self.scaling_factor).astype(jnp.float32)

    def decode(self, params: Any, latents_bchw: jax.Array) -> jax.Array:
        if self.vae is None:
            return jnp.clip(jnp.transpose(latents_bchw, (0, 2, 3, 1)), -1.0, 1.0)
        x = self.vae.apply({"params": params["vae"]},
                           (latents_bchw / self.scaling_factor).astype(self.vae.dtype),
                           method=self.vae.decode).sample
        return jnp.clip(jnp.transpose(x, (0, 2, 3, 1)).astype(jnp.float32), -1.0, 1.0)


def load(model: str, dtype: str = "float32", revision: str | None = None,
         allow_pickle: bool = False, attention: str = "diffusers",
         remat_policy: str = "none") -> ModelBundle:
    """Loads an SD-family pipeline from a hub id or a local folder in diffusers' layout."""
    from diffusers import FlaxAutoencoderKL, FlaxUNet2DConditionModel
    from transformers import CLIPTokenizer, FlaxCLIPTextModel

    folder = resolve_folder(model, revision, allow_pickle)
    jdtype = dtype_from_name(dtype)
    unet, unet_p = load_diffusers_module(FlaxUNet2DConditionModel, folder, "unet", jdtype, allow_pickle)
    te, te_p = load_transformers_model(FlaxCLIPTextModel, folder, "text_encoder", jdtype, allow_pickle)
    params = {"unet": unet_p, "text_encoder": te_p}
    vae, scaling, size = None, 1.0, unet.sample_size
    if (folder / "vae").is_dir():
        vae, params["vae"] = load_diffusers_module(FlaxAutoencoderKL, folder, "vae", jdtype, allow_pickle)
        scaling = float(vae.scaling_factor)
    sched_cfg = read_config(folder, "scheduler", "scheduler_config.json")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    te_cfg = read_config(folder, "text_encoder")
    fingerprint = json.dumps([dict(unet.config), te_cfg, dict(vae.config) if vae else None, dtype],
                             sort_keys=True, default=str)
    definition = SDModel(
        unet=unet, text_encoder=te, vae=vae, fingerprint=fingerprint, schedule=schedule_from_config(sched_cfg),
        embed_dim=int(te_cfg["hidden_size"]), max_tokens=int(tokenizer.model_max_length),
        latent_shape=(int(unet.in_channels), int(size), int(size)), scaling_factor=scaling,
        tokenizer=tokenizer, attention=attention, remat_policy=remat_policy)
    info = {"model": model, "family": "sd", "revision": revision, "dtype": dtype,
            "attention": attention, "remat_policy": remat_policy,
            "folder": str(Path(folder).resolve())}
    return ModelBundle(definition, params, info)
