"""The `flux` family: FLUX.1 [schnell] and [dev] (T5 + CLIP-L text, Flux transformer, 16-channel
autoencoder), behind the same interface as SD, so the samplers and the collector run it as they
are.

Rectified flow as a VP model. Flux's forward process is ``x_s = (1 - s) x0 + s e`` (s = sigma).
With ``c = sqrt((1 - s)^2 + s^2)``, ``x_s / c = a x0 + b e`` with ``a = (1 - s) / c``, ``b = s / c``
and ``a^2 + b^2 = 1``: a VP model with ``alphas_cumprod = a^2``. The adapter presents exactly that
model with ``prediction_type="sample"``: ``predict`` takes the VP latent ``x``, forms
``x_s = c x``, asks the transformer for the velocity ``v`` and returns the clean estimate
``x0 = x_s - s v`` (the authors' one-step estimate). A DDIM step in these coordinates is Flux's
Euler step ``x_s + (s' - s) v`` (tests/models/test_flux.py checks it numerically).

The 1000-step training grid holds ``sigma(t) = shift((t + 1) / 1000)``: [schnell] no shift,
[dev] the resolution-dependent exponential shift of FluxPipeline (``mu`` from the image's token
count). ``trailing`` spacing then gives diffusers' sigmas ``linspace(1, 1/K, K)`` exactly where K
divides 1000 (schnell: 4 steps, t = 999, 749, 499, 249), to within 5e-4 otherwise. [dev]'s
distilled guidance is a transformer input (``TextCond.extra["guidance"]``), not CFG: run it with
``--guidance 0`` (one call per step); ``distilled_guidance`` sets the value.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.models.base import ModelBundle, NoiseSchedule, TextCond, Tokens
from jaxsteer.models.nn.flux import image_ids, pack, unpack
from jaxsteer.models.nn.load import load_clip
from jaxsteer.models.nn.load_flux import load_flux_transformer, load_flux_vae, load_t5
from jaxsteer.models.sd import fingerprint_of
from jaxsteer.models.tokens_t5 import T5Tokenizer, tokenize_flux
from jaxsteer.models.weights import dtype_from_name, read_config, resolve_folder

CLIP_TOKENS = 77


def mu_of(cfg: dict, image_seq_len: int) -> float:
    """FluxPipeline's ``calculate_shift``: mu linear in the number of packed image tokens."""
    base_len, max_len = int(cfg.get("base_image_seq_len", 256)), int(cfg.get("max_image_seq_len",
                                                                              4096))
    base, top = float(cfg.get("base_shift", 0.5)), float(cfg.get("max_shift", 1.15))
    m = (top - base) / (max_len - base_len)
    return image_seq_len * m + base - m * base_len


def flow_sigmas(cfg: dict, image_seq_len: int) -> np.ndarray:
    """[T] sigma of each training timestep index t: ``shift((t + 1) / T)`` as
    FlowMatchEulerDiscreteScheduler shifts its sigmas (dynamic: exponential in mu)."""
    n = int(cfg.get("num_train_timesteps", 1000))
    s = np.arange(1, n + 1, dtype=np.float64) / n
    if cfg.get("use_dynamic_shifting", False):
        if cfg.get("time_shift_type", "exponential") != "exponential":
            raise ValueError("only the exponential time shift of Flux is supported")
        mu = mu_of(cfg, image_seq_len)
        return math.exp(mu) / (math.exp(mu) + (1.0 / s - 1.0))
    shift = float(cfg.get("shift", 1.0))
    return shift * s / (1.0 + (shift - 1.0) * s)


def vp_schedule(sigmas: np.ndarray) -> NoiseSchedule:
    """The VP schedule of rectified-flow sigmas: alphas_cumprod = (1 - s)^2 / ((1 - s)^2 + s^2)."""
    alpha = (1.0 - sigmas) ** 2 / ((1.0 - sigmas) ** 2 + sigmas ** 2)
    return NoiseSchedule(alphas_cumprod=tuple(float(a) for a in alpha), prediction_type="sample",
                         set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing")


@dataclasses.dataclass(frozen=True)
class FluxModel:
    """Flux definition: modules and constants only (weights live in ``params``)."""

    transformer: Any = dataclasses.field(compare=False)
    text_encoder: Any = dataclasses.field(compare=False)     # CLIP-L: the pooled vector
    text_encoder_2: Any = dataclasses.field(compare=False)   # T5: the differentiated rows
    vae: Any = dataclasses.field(compare=False)
    fingerprint: str
    schedule: NoiseSchedule
    sigmas: tuple[float, ...] = (1.0,)   # [T] flow sigma of each training timestep
    embed_dim: int = 4096
    max_tokens: int = 512
    latent_shape: tuple[int, int, int] = (16, 128, 128)
    scaling_factor: float = 0.3611
    shift_factor: float = 0.1159
    distilled_guidance: float | None = None   # [dev]: 3.5 by default; None for [schnell]
    tokenizer: Any = dataclasses.field(default=None, compare=False, hash=False)
    tokenizer_2: Any = dataclasses.field(default=None, compare=False, hash=False)
    family: str = "flux"
    attention: str = "xla"
    remat_policy: str = "none"

    def tokenize(self, prompt: str, allow_empty: bool = False) -> Tokens:
        return tokenize_flux(self.tokenizer_2, self.tokenizer, prompt, self.max_tokens,
                             CLIP_TOKENS, allow_empty)

    def encode_text(self, params: Any, ids_bet: jax.Array) -> TextCond:
        t5 = self.text_encoder_2.apply({"params": params["text_encoder_2"]},
                                       ids_bet[:, 0, :self.max_tokens])
        clip = self.text_encoder.apply({"params": params["text_encoder"]},
                                       ids_bet[:, 1, :CLIP_TOKENS])
        extra = {"pooled": clip.pooled.astype(jnp.float32)}
        if self.distilled_guidance is not None:
            extra["guidance"] = jnp.full(ids_bet.shape[:1], self.distilled_guidance, jnp.float32)
        return TextCond(emb=t5.astype(jnp.float32), extra=extra)

    def sigma(self, t_b: jax.Array) -> jax.Array:
        return jnp.asarray(self.sigmas, jnp.float32)[t_b]

    def velocity(self, params: Any, x_flow_bchw: jax.Array, sigma_b: jax.Array,
                 cond: TextCond) -> jax.Array:
        """The transformer's velocity at flow latent ``x_s`` and sigma ``s`` (both [b, ...])."""
        tr = self.transformer.clone(attention=self.attention, remat=self.remat_policy)
        dtype = tr.dtype
        _, _, h, w = x_flow_bchw.shape
        t = cond.emb.shape[1]
        guidance = cond.extra.get("guidance") if tr.config.guidance_embeds else None
        v = tr.apply({"params": params["transformer"]}, pack(x_flow_bchw).astype(dtype),
                     cond.emb.astype(dtype), cond.extra["pooled"].astype(dtype),
                     sigma_b.astype(dtype), image_ids(h, w), jnp.zeros((t, 3), jnp.int32),
                     None if guidance is None else guidance.astype(dtype))
        return unpack(v, h, w).astype(x_flow_bchw.dtype)

    def predict(self, params: Any, x_bchw: jax.Array, t_b: jax.Array, cond: TextCond) -> jax.Array:
        s = self.sigma(t_b).astype(x_bchw.dtype)[:, None, None, None]
        x_flow = jnp.sqrt((1 - s) ** 2 + s ** 2) * x_bchw
        return x_flow - s * self.velocity(params, x_flow, s[:, 0, 0, 0], cond)

    def encode_image(self, params: Any, images_bhwc: jax.Array) -> jax.Array:
        x = jnp.transpose(images_bhwc, (0, 3, 1, 2)).astype(self.vae.dtype)
        dist = self.vae.apply({"params": params["vae"]}, x, method="encode")
        return ((dist.mean - self.shift_factor) * self.scaling_factor).astype(jnp.float32)

    def decode(self, params: Any, latents_bchw: jax.Array) -> jax.Array:
        z = latents_bchw / self.scaling_factor + self.shift_factor
        x = self.vae.apply({"params": params["vae"]}, z.astype(self.vae.dtype), method="decode")
        return jnp.clip(jnp.transpose(x, (0, 2, 3, 1)).astype(jnp.float32), -1.0, 1.0)


def load(model: str, dtype: str = "float32", revision: str | None = None,
         allow_pickle: bool = False, attention: str = "xla", remat_policy: str = "none",
         distilled_guidance: float = 3.5, max_tokens: int | None = None) -> ModelBundle:
    """Loads a Flux pipeline from a hub id or a local folder in diffusers' layout.

    ``max_tokens``: T5 window (default: the tokenizer's, at most 512; FluxPipeline uses 256 for
    [schnell] and 512 for [dev]). ``attention="diffusers"`` (the CPU default) is the einsum form.
    """
    from transformers import CLIPTokenizer

    folder = resolve_folder(model, revision, allow_pickle)
    jdtype = dtype_from_name(dtype)
    tr, tr_p = load_flux_transformer(folder / "transformer", jdtype, allow_pickle,
                                     attention=attention, remat=remat_policy)
    te, te_p = load_clip(folder / "text_encoder", jdtype, allow_pickle, with_projection=False)
    t5, t5_p = load_t5(folder / "text_encoder_2", jdtype, allow_pickle)
    vae, vae_p, shift = load_flux_vae(folder / "vae", jdtype, allow_pickle)
    params = {"transformer": tr_p, "text_encoder": te_p, "text_encoder_2": t5_p, "vae": vae_p}
    tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    tok2 = T5Tokenizer(folder / "tokenizer_2", max_tokens)
    vae_cfg = read_config(folder, "vae")
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    size = int(vae_cfg.get("sample_size", 1024)) // down
    sched_cfg = read_config(folder, "scheduler", "scheduler_config.json")
    sigmas = flow_sigmas(sched_cfg, (size // 2) ** 2)
    guided = bool(tr.config.guidance_embeds)
    definition = FluxModel(
        transformer=tr, text_encoder=te, text_encoder_2=t5, vae=vae,
        fingerprint=(fingerprint_of(tr, te, t5, vae, dtype=dtype)
                     + f"|{guided and distilled_guidance}"),
        schedule=vp_schedule(sigmas), sigmas=tuple(float(s) for s in sigmas),
        embed_dim=int(t5.config.d_model), max_tokens=tok2.model_max_length,
        latent_shape=(int(vae.config.latent_channels), size, size),
        scaling_factor=float(vae.config.scaling_factor), shift_factor=shift,
        distilled_guidance=float(distilled_guidance) if guided else None,
        tokenizer=tok, tokenizer_2=tok2, attention=attention, remat_policy=remat_policy)
    info = {"model": model, "family": "flux", "revision": revision, "dtype": dtype,
            "attention": attention, "remat_policy": remat_policy,
            "folder": str(Path(folder).resolve())}
    return ModelBundle(definition, params, info)
