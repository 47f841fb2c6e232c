"""(module, params) of each network from a subfolder in diffusers' pipeline layout.

Weights, in order of preference: Flax msgpack (written by diffusers 0.39 / transformers 4: the
bundled shapes model, users' run folders; same tree as ours), PyTorch safetensors (one file, a
``variant`` such as ``fp16``, or shards with an index), pickled PyTorch ``.bin`` only with the
user's consent (and torch). A UNet read from diffusers-Flax msgpack keeps that port's numerics
(``UNetConfig.diffusers_flax``), so models trained with it give the outputs they always gave.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.serialization import msgpack_restore

from jaxsteer.errors import UserError
from jaxsteer.models.nn.clip import CLIPTextConfig, CLIPTextModel
from jaxsteer.models.nn.convert import find_weights, pt_to_flax, read_state_dict
from jaxsteer.models.nn.unet import UNet2DConditionModel, UNetConfig
from jaxsteer.models.nn.vae import AutoencoderKL, VAEConfig
from jaxsteer.models.weights import damaged_weights, read_config


def _config(sub: Path) -> dict:
    return read_config(sub.parent, sub.name)


def _cast(tree: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda a: jnp.asarray(a, dtype)
                        if jnp.issubdtype(np.asarray(a).dtype, jnp.floating) else jnp.asarray(a),
                        tree)


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    import torch  # only with --allow-pickle; torch is the user's own install

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _weights(sub: Path, stem: str, msgpack: str, init: Callable, dtype: Any,
             allow_pickle: bool, variant: str | None) -> Any:
    """The params of the module whose random init is ``init``."""
    shapes = jax.eval_shape(init, jax.random.key(0))
    if (sub / msgpack).exists():
        with damaged_weights(sub / msgpack):
            tree = msgpack_restore((sub / msgpack).read_bytes())
        if jax.tree.structure(tree) != jax.tree.structure(shapes):
            raise UserError(f"{sub / msgpack} does not hold the parameters its config describes")
        return _cast(tree, dtype)
    files = find_weights(sub, stem, variant)
    if files is not None:
        with damaged_weights(files[0] if len(files) == 1 else sub):
            state = read_state_dict(files)
        return _cast(pt_to_flax(state, shapes), dtype)
    pickled = sub / (f"{stem}.bin" if stem != "model" else "pytorch_model.bin")
    if pickled.exists():
        if not allow_pickle:
            raise UserError(f"{sub} has only pickled PyTorch weights (.bin); loading them runs "
                            "arbitrary code from the file. Pass --allow-pickle if you trust it "
                            "(needs the 'torch' extra).")
        return _cast(pt_to_flax(_read_pickle(pickled), shapes), dtype)
    raise UserError(f"no weights found in {sub} (looked for Flax msgpack and safetensors)")


def load_unet(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
              variant: str | None = None, **options) -> tuple[UNet2DConditionModel, Any]:
    """``options``: the module's ``attention`` and ``remat`` fields."""
    cfg = _config(sub)
    flax_port = (sub / "diffusion_flax_model.msgpack").exists()
    module = UNet2DConditionModel(UNetConfig.from_diffusers(cfg, diffusers_flax=flax_port),
                                  dtype=dtype, **options)
    params = _weights(sub, "diffusion_pytorch_model", "diffusion_flax_model.msgpack",
                         module.init_weights, dtype, allow_pickle, variant)
    return module, params


def load_clip(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
              with_projection: bool | None = None,
              variant: str | None = None) -> tuple[CLIPTextModel, Any]:
    """``with_projection``: default from the config's ``architectures``."""
    cfg = _config(sub)
    if with_projection is None:
        with_projection = "CLIPTextModelWithProjection" in (cfg.get("architectures") or [])
    module = CLIPTextModel(CLIPTextConfig.from_transformers(cfg, with_projection), dtype=dtype)
    params = _weights(sub, "model", "flax_model.msgpack", module.init_weights, dtype,
                         allow_pickle, variant)
    return module, params


def load_vae(sub: Path, dtype: Any = jnp.float32, allow_pickle: bool = False,
             variant: str | None = None) -> tuple[AutoencoderKL, Any]:
    module = AutoencoderKL(VAEConfig.from_diffusers(_config(sub)), dtype=dtype)
    params = _weights(sub, "diffusion_pytorch_model", "diffusion_flax_model.msgpack",
                         module.init_weights, dtype, allow_pickle, variant)
    return module, params
