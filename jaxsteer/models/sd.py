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
from jaxsteer.models.nn.load import load_clip, load_unet, load_vae
from jaxsteer.models.tokens import tokenize
from jaxsteer.models.weights import dtype_from_name, read_config, resolve_folder


@dataclasses.dataclass(frozen=True)
class SDModel:
    """SD-family definition: modules and constants only (weights live in ``params``)."""

    # jaxsteer's own linen modules (models/nn). ``fingerprint`` (their configs and dtype) is
    # what two definitions are compared by, so two loads of one model share compiled programs.
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
    # The UNet's attention kernel (models/nn/layers.attention_fn): diffusers | xla | cudnn | auto.
    attention: str = "diffusers"
    # What the UNet call keeps for the backward pass (models/remat.py): none | matmuls | ...
    remat_policy: str = "none"

    def tokenize(self, prompt: str, allow_empty: bool = False) -> Tokens:
        return tokenize((self.tokenizer,), prompt, self.max_tokens, allow_empty)

    def encode_text(self, params: Any, ids_bet: jax.Array) -> TextCond:
        out = self.text_encoder.apply({"params": params["text_encoder"]}, ids_bet[:, 0])
        return TextCond(emb=out.last_hidden_state.astype(jnp.float32))

    def predict(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, cond: TextCond) -> jax.Array:
        return self.unet_call(params, x_bchw, t_b, cond.emb, None)

    def unet_call(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, emb: jax.Array,
                  added: dict | None) -> jax.Array:
        """The UNet in its own dtype, with this definition's attention kernel and remat policy
        (module fields, set here so that ``dataclasses.replace`` of the definition applies)."""
        unet = self.unet.clone(attention=self.attention, remat=self.remat_policy)
        dtype = unet.dtype
        out = unet.apply({"params": params["unet"]}, x_bchw.astype(dtype), t_b, emb.astype(dtype),
                         added)
        return out.astype(x_bchw.dtype)

    def encode_image(self, params: Any, images_bhwc: jax.Array) -> jax.Array:
        x = jnp.transpose(images_bhwc, (0, 3, 1, 2))
        if self.vae is None:
            return x
        dist = self.vae.apply({"params": params["vae"]}, x.astype(self.vae.dtype), method="encode")
        return (dist.mean * self.scaling_factor).astype(jnp.float32)  # [b, c, h, w]

    def decode(self, params: Any, latents_bchw: jax.Array) -> jax.Array:
        if self.vae is None:
            return jnp.clip(jnp.transpose(latents_bchw, (0, 2, 3, 1)), -1.0, 1.0)
        x = self.vae.apply({"params": params["vae"]},
                           (latents_bchw / self.scaling_factor).astype(self.vae.dtype),
                           method="decode")
        return jnp.clip(jnp.transpose(x, (0, 2, 3, 1)).astype(jnp.float32), -1.0, 1.0)


def fingerprint_of(*modules: Any, dtype: str) -> str:
    """A string that two loads of one model share: the modules' configs and the dtype."""
    return json.dumps([dataclasses.asdict(m.config) if m is not None else None for m in modules]
                      + [dtype], sort_keys=True, default=str)


def load(model: str, dtype: str = "float32", revision: str | None = None,
         allow_pickle: bool = False, attention: str = "diffusers",
         remat_policy: str = "none") -> ModelBundle:
    """Loads an SD-family pipeline from a hub id or a local folder in diffusers' layout."""
    from transformers import CLIPTokenizer

    folder = resolve_folder(model, revision, allow_pickle)
    jdtype = dtype_from_name(dtype)
    unet, unet_p = load_unet(folder / "unet", jdtype, allow_pickle, attention=attention,
                             remat=remat_policy)
    te, te_p = load_clip(folder / "text_encoder", jdtype, allow_pickle, with_projection=False)
    params = {"unet": unet_p, "text_encoder": te_p}
    vae, scaling, size = None, 1.0, unet.config.sample_size
    if (folder / "vae").is_dir():
        vae, params["vae"] = load_vae(folder / "vae", jdtype, allow_pickle)
        scaling = float(vae.config.scaling_factor)
    sched_cfg = read_config(folder, "scheduler", "scheduler_config.json")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    definition = SDModel(
        unet=unet, text_encoder=te, vae=vae, fingerprint=fingerprint_of(unet, te, vae, dtype=dtype),
        schedule=schedule_from_config(sched_cfg), embed_dim=int(te.config.hidden_size),
        max_tokens=int(tokenizer.model_max_length),
        latent_shape=(int(unet.config.in_channels), int(size), int(size)), scaling_factor=scaling,
        tokenizer=tokenizer, attention=attention, remat_policy=remat_policy)
    info = {"model": model, "family": "sd", "revision": revision, "dtype": dtype,
            "attention": attention, "remat_policy": remat_policy,
            "folder": str(Path(folder).resolve())}
    return ModelBundle(definition, params, info)
