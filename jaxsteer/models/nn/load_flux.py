"""(module, params) of Flux's networks from a pipeline folder in diffusers' layout, torch-free:
``transformer/`` (sharded safetensors with an index), ``text_encoder_2/`` (T5, sharded), and the
16-channel ``vae/`` (its ``shift_factor`` is applied by the adapter, not the module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxsteer.errors import UserError
from jaxsteer.models.nn.convert import find_weights, pt_to_flax, read_state_dict
from jaxsteer.models.nn.flux import FluxConfig, FluxTransformer2DModel
from jaxsteer.models.nn.load import _cast, _config, _weights
from jaxsteer.models.nn.t5 import T5Config, T5EncoderModel
from jaxsteer.models.nn.vae import AutoencoderKL, VAEConfig
from jaxsteer.models.weights import damaged_weights

_NO_MSGPACK = "(no flax msgpack for flux)"


def load_flux_transformer(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
                          variant: str | None = None,
                          **options) -> tuple[FluxTransformer2DModel, Any]:
    """``options``: the module's ``attention`` and ``remat`` fields."""
    module = FluxTransformer2DModel(FluxConfig.from_diffusers(_config(sub)), dtype=dtype,
                                    **options)
    params = _weights(sub, "diffusion_pytorch_model", _NO_MSGPACK, module.init_weights, dtype,
                      allow_pickle, variant)
    return module, params


def t5_state(state: dict) -> dict:
    """transformers saves the tied token embedding as ``shared`` and/or
    ``encoder.embed_tokens``: keep one, named ``shared``."""
    state = dict(state)
    tied = state.pop("encoder.embed_tokens.weight", None)
    if "shared.weight" not in state and tied is not None:
        state["shared.weight"] = tied
    return state


def load_t5(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
            variant: str | None = None) -> tuple[T5EncoderModel, Any]:
    module = T5EncoderModel(T5Config.from_transformers(_config(sub)), dtype=dtype)
    files = find_weights(sub, "model", variant)
    if files is None:  # pickled weights and their refusal: the shared path
        return module, _weights(sub, "model", _NO_MSGPACK, module.init_weights, dtype,
                                allow_pickle, variant)
    shapes = jax.eval_shape(module.init_weights, jax.random.key(0))
    with damaged_weights(files[0] if len(files) == 1 else sub):
        state = read_state_dict(files)
    try:
        return module, _cast(pt_to_flax(t5_state(state), shapes), dtype)
    except ValueError as e:
        raise UserError(f"{sub}: {e}") from e


def flux_vae_config(cfg: dict) -> tuple[VAEConfig, float, float]:
    """(module config, scaling_factor, shift_factor) of a Flux autoencoder config."""
    shift = float(cfg.get("shift_factor") or 0.0)
    vcfg = VAEConfig.from_diffusers({k: v for k, v in cfg.items() if k != "shift_factor"})
    return vcfg, float(vcfg.scaling_factor), shift


def load_flux_vae(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
                  variant: str | None = None) -> tuple[AutoencoderKL, Any, float]:
    """(module, params, shift_factor)."""
    vcfg, _, shift = flux_vae_config(_config(sub))
    module = AutoencoderKL(vcfg, dtype=dtype)
    params = _weights(sub, "diffusion_pytorch_model", _NO_MSGPACK, module.init_weights, dtype,
                      allow_pickle, variant)
    return module, params, shift
