"""Full-size architectures with random weights, built without the hub (for benchmarks).

The UNets of SD 1.5, SD 2.1 / SD-Turbo and SDXL (base, Turbo, DMD2) and the Flux transformer
(FLUX.1 [schnell]) with their real configs, so the compute and memory are those of the real
models; weights are random (fan-in scaled normals, made on the device in one jitted call). The
text encoders are left out: the gradient kernel only needs ``predict``, the noise schedule and
``latent_shape``, and the conditioning is a random ``[77, D]`` embedding (Flux: ``[512, 4096]``
T5 rows and the pooled CLIP vector; ``random_cond``), the tensor the method differentiates.

The UNet configs are plain dicts in diffusers' config keys (jaxsteer's UNet reads them with
``UNetConfig.from_diffusers``, with PyTorch numerics), so the PyTorch reference
(`jaxsteer.benchmarks.torch_reference`) builds the same networks from them.

Model knobs, part of the definition (and so of the compiled program's cache key):
``attention`` (see `jaxsteer.models.attention`) and ``remat_policy`` (see
`jaxsteer.models.remat`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.models import attention as attention_mod
from jaxsteer.models.base import ModelBundle, TextCond, schedule_from_config
from jaxsteer.models.flux import FluxModel, flow_sigmas, vp_schedule
from jaxsteer.models.nn import UNet2DConditionModel, UNetConfig
from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel
from jaxsteer.models.remat import REMAT_POLICIES
from jaxsteer.models.sd import SDModel
from jaxsteer.models.sdxl import SDXLModel
from jaxsteer.models.tiny_flux import SCHNELL_SCHEDULER

_SD_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
_SD_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")

# UNet configs (hub: runwayml/stable-diffusion-v1-5, stabilityai/sd-turbo (= SD 2.1),
# stabilityai/stable-diffusion-xl-base-1.0), without sample_size, which the architecture sets.
UNETS: dict[str, dict[str, Any]] = {
    "sd15": dict(in_channels=4, out_channels=4, down_block_types=_SD_DOWN, up_block_types=_SD_UP,
                 block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 attention_head_dim=8, cross_attention_dim=768, use_linear_projection=False,
                 flip_sin_to_cos=True, freq_shift=0),
    "sd21": dict(in_channels=4, out_channels=4, down_block_types=_SD_DOWN, up_block_types=_SD_UP,
                 block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                 attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                 use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0),
    "sdxl": dict(in_channels=4, out_channels=4,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 block_out_channels=(320, 640, 1280), layers_per_block=2,
                 attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10),
                 cross_attention_dim=2048, use_linear_projection=True, flip_sin_to_cos=True,
                 freq_shift=0, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816),
    # Tiny versions of the same block structure (tests, CPU smoke runs).
    "tiny": dict(in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D",),
                 up_block_types=("CrossAttnUpBlock2D",), block_out_channels=(32,),
                 layers_per_block=1, attention_head_dim=8, cross_attention_dim=32,
                 use_linear_projection=False, flip_sin_to_cos=True, freq_shift=0),
    "tiny-xl": dict(in_channels=4, out_channels=4,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                    block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=(4, 8),
                    transformer_layers_per_block=(1, 2), cross_attention_dim=96,
                    use_linear_projection=True, flip_sin_to_cos=True, freq_shift=0,
                    addition_embed_type="text_time", addition_time_embed_dim=8,
                    projection_class_embeddings_input_dim=64 + 6 * 8),
}

# Flux transformer configs (hub: black-forest-labs/FLUX.1-schnell, transformer/config.json),
# in diffusers' keys: jaxsteer's transformer reads them with FluxConfig.from_diffusers, and the
# PyTorch references (`jaxsteer.benchmarks.flux_reference`) build diffusers' from them.
FLUX_TRANSFORMERS: dict[str, dict[str, Any]] = {
    "flux": dict(patch_size=1, in_channels=64, out_channels=None, num_layers=19,
                 num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                 joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=False,
                 axes_dims_rope=(16, 56, 56)),
    "tiny-flux": dict(patch_size=1, in_channels=16, out_channels=None, num_layers=1,
                      num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
                      joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=False,
                      axes_dims_rope=(2, 2, 4)),
}

_SCALED_LINEAR = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
                  "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "epsilon",
                  "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading"}
SCHEDULES: dict[str, dict[str, Any]] = {
    "leading": _SCALED_LINEAR,                                   # SD 1.5, SDXL base (DDIM)
    "trailing": _SCALED_LINEAR | {"timestep_spacing": "trailing"},  # SD-Turbo, SDXL-Turbo
}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One benchmarked network: UNet (or Flux transformer) config, latent size, text width,
    schedule."""

    unet: str                   # key of UNETS (flux: of FLUX_TRANSFORMERS)
    sample_size: int            # latent side (pixels / 8)
    family: str                 # sd | sdxl | flux
    schedule: str = "leading"   # key of SCHEDULES (flux: its flow-matching schedule)
    pooled_dim: int = 0         # sdxl, flux: width of the pooled text embedding
    tokens: int = 77            # text rows (flux: T5's 512)
    latent_channels: int = 4    # flux: 16

    @property
    def embed_dim(self) -> int:
        if self.family == "flux":
            return int(FLUX_TRANSFORMERS[self.unet]["joint_attention_dim"])
        return int(UNETS[self.unet]["cross_attention_dim"])

    def unet_config(self, sample_size: int | None = None) -> dict[str, Any]:
        return dict(UNETS[self.unet], sample_size=int(sample_size or self.sample_size))

    def flux_config(self) -> dict[str, Any]:
        return dict(FLUX_TRANSFORMERS[self.unet])


ARCHITECTURES: dict[str, Architecture] = {
    "sd15": Architecture("sd15", 64, "sd"),
    "sd21": Architecture("sd21", 64, "sd"),                          # SD 2.1-base, 512x512
    "sd-turbo": Architecture("sd21", 64, "sd", "trailing"),
    "sdxl": Architecture("sdxl", 128, "sdxl", pooled_dim=1280),      # also the DMD2 UNet
    "sdxl-turbo": Architecture("sdxl", 64, "sdxl", "trailing", pooled_dim=1280),
    "tiny": Architecture("tiny", 8, "sd"),
    "tiny-xl": Architecture("tiny-xl", 8, "sdxl", pooled_dim=64),
    # FLUX.1 [schnell] at 1024x1024: 128x128 latents, 4,096 packed image tokens.
    "flux-schnell": Architecture("flux", 128, "flux", "flow", pooled_dim=768, tokens=512,
                                 latent_channels=16),
    "tiny-flux": Architecture("tiny-flux", 8, "flux", "flow", pooled_dim=32, tokens=16,
                              latent_channels=4),
}


def param_shapes(module: Any, dtype: Any) -> Any:
    """``ShapeDtypeStruct``s of ``module``'s parameters in ``dtype`` (nothing is allocated)."""
    shapes = jax.eval_shape(module.init_weights, jax.random.key(0))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, dtype), shapes)


def random_params(module: Any, dtype: Any, seed: int = 0) -> Any:
    """Random weights of ``module`` (fan-in scaled normals, norms 1, biases 0) in ``dtype``.

    Shapes come from ``eval_shape`` of the initialiser (no UNet forward is compiled). One pool of
    normals (twice the largest leaf) is drawn on the default device and every kernel is a scaled
    slice of it at a random offset: one jitted call of slices compiles in seconds, where one
    random draw per leaf (1,680 leaves for SDXL) took minutes to compile.
    """
    leaves, treedef = jax.tree_util.tree_flatten_with_path(param_shapes(module, dtype))
    sizes = [int(np.prod(s.shape)) for _, s in leaves]
    pool_size = 2 * max(sizes)
    rng = np.random.default_rng(seed)
    offsets = [int(rng.integers(0, pool_size - n + 1)) for n in sizes]

    @jax.jit
    def fill(pool):
        out = []
        for (path, leaf), n, o in zip(leaves, sizes, offsets):
            name = str(getattr(path[-1], "key", path[-1]))
            if name == "scale":
                out.append(jnp.ones(leaf.shape, leaf.dtype))
            elif name == "bias":
                out.append(jnp.zeros(leaf.shape, leaf.dtype))
            else:
                fan_in = int(np.prod(leaf.shape[:-1])) or 1
                w = jax.lax.slice(pool, (o,), (o + n,)).reshape(leaf.shape) * fan_in ** -0.5
                out.append(w.astype(leaf.dtype))
        return treedef.unflatten(out)

    pool = jax.jit(lambda k: jax.random.normal(k, (pool_size,), jnp.float32))(
        jax.random.key(seed))
    return fill(pool)


def build(name: str, dtype: str = "bfloat16", seed: int = 0, attention: str = "diffusers",
          remat_policy: str = "none", prediction_type: str | None = None,
          sample_size: int | None = None, params: Any = None,
          scan_layers: bool = False) -> ModelBundle:
    """A `ModelBundle` of architecture ``name`` with random UNet weights (``params["unet"]``).

    Args:
      name: a key of ``ARCHITECTURES``.
      dtype: module and parameter dtype, "bfloat16" or "float32".
      attention: see `jaxsteer.models.attention.IMPLEMENTATIONS`.
      remat_policy: see `jaxsteer.models.remat`.
      prediction_type: "epsilon" (default) or "v_prediction" (costs the same).
      sample_size: override of the latent side (smaller, for CPU checks).
      params: reuse these weights (cast to ``dtype``) instead of drawing new ones.
      scan_layers: `UNetConfig.scan_layers` (stacks of identical transformer blocks as a scan).
    """
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r}: use one of {', '.join(ARCHITECTURES)}")
    if attention not in attention_mod.IMPLEMENTATIONS:
        raise UserError(f"unknown attention {attention!r}: use one of "
                        f"{', '.join(attention_mod.IMPLEMENTATIONS)}")
    if remat_policy not in REMAT_POLICIES:
        raise UserError(f"unknown remat policy {remat_policy!r}: use one of "
                        f"{', '.join(REMAT_POLICIES)}")
    if dtype not in ("bfloat16", "float32"):
        raise UserError(f"--dtype must be bfloat16 or float32, got {dtype!r}")
    arch = ARCHITECTURES[name]
    jdtype = jnp.dtype(dtype)
    if arch.family == "flux":
        return _build_flux(name, arch, jdtype, seed, attention, remat_policy, sample_size,
                           params)
    cfg = arch.unet_config(sample_size)
    unet_cfg = dataclasses.replace(UNetConfig.from_diffusers(cfg), scan_layers=scan_layers)
    unet = UNet2DConditionModel(unet_cfg, dtype=jdtype, attention=attention, remat=remat_policy)
    if params is None:
        params = {"unet": random_params(unet, jdtype, seed)}
    else:
        params = jax.tree.map(lambda a: a.astype(jdtype), params)
    sched_cfg = dict(SCHEDULES[arch.schedule])
    if prediction_type:
        sched_cfg["prediction_type"] = prediction_type
    size = int(cfg["sample_size"])
    fingerprint = json.dumps(["architecture", name, cfg, dtype, scan_layers], sort_keys=True,
                             default=str)
    common = dict(unet=unet, text_encoder=None, vae=None, fingerprint=fingerprint,
                  schedule=schedule_from_config(sched_cfg), embed_dim=arch.embed_dim,
                  max_tokens=77, latent_shape=(4, size, size), scaling_factor=1.0,
                  attention=attention, remat_policy=remat_policy)
    if arch.family == "sdxl":
        pixels = float(size * 8)
        model = SDXLModel(**common, time_ids=(pixels, pixels, 0.0, 0.0, pixels, pixels))
    else:
        model = SDModel(**common)
    info = {"model": f"random:{name}", "family": arch.family, "dtype": dtype,
            "architecture": name, "unet_config": cfg}
    return ModelBundle(model, params, info)


def _build_flux(name: str, arch: Architecture, jdtype: Any, seed: int, attention: str,
                remat_policy: str, sample_size: int | None, params: Any) -> ModelBundle:
    """A `FluxModel` of random transformer weights (``params["transformer"]``), [schnell]'s
    unshifted flow schedule at the architecture's resolution."""
    cfg = arch.flux_config()
    transformer = FluxTransformer2DModel(FluxConfig.from_diffusers(cfg), dtype=jdtype,
                                         attention=attention, remat=remat_policy)
    if params is None:
        params = {"transformer": random_params(transformer, jdtype, seed)}
    else:
        params = jax.tree.map(lambda a: a.astype(jdtype), params)
    size = int(sample_size or arch.sample_size)
    sigmas = flow_sigmas(SCHNELL_SCHEDULER, (size // 2) ** 2)
    fingerprint = json.dumps(["architecture", name, cfg, size, str(jdtype)], sort_keys=True,
                             default=str)
    model = FluxModel(transformer=transformer, text_encoder=None, text_encoder_2=None, vae=None,
                      fingerprint=fingerprint, schedule=vp_schedule(sigmas),
                      sigmas=tuple(float(s) for s in sigmas), embed_dim=arch.embed_dim,
                      max_tokens=arch.tokens, latent_shape=(arch.latent_channels, size, size),
                      attention=attention, remat_policy=remat_policy)
    info = {"model": f"random:{name}", "family": "flux", "dtype": str(jdtype),
            "architecture": name, "transformer_config": cfg}
    return ModelBundle(model, params, info)


def random_cond(name: str, seed: int = 0) -> TextCond:
    """A random unbatched conditioning for architecture ``name``: emb [tokens, D] (+ pooled)."""
    arch = ARCHITECTURES[name]
    k1, k2 = jax.random.split(jax.random.key(seed))
    emb = jax.random.normal(k1, (arch.tokens, arch.embed_dim), jnp.float32)
    extra = {}
    if arch.family in ("sdxl", "flux"):
        extra["pooled"] = jax.random.normal(k2, (arch.pooled_dim,), jnp.float32)
    return TextCond(emb=emb, extra=extra)


def denoiser_shapes(bundle: ModelBundle) -> dict:
    """The parameter tree of a built architecture's denoiser as ``ShapeDtypeStruct`` s (for
    lowering without weights): ``{"unet": ...}`` or, for Flux, ``{"transformer": ...}``."""
    model = bundle.model
    if model.family == "flux":
        return {"transformer": param_shapes(model.transformer, model.transformer.dtype)}
    return {"unet": param_shapes(model.unet, model.unet.dtype)}
