"""Finding and reading weights: hub id or local folder, Flax msgpack or safetensors, never pickle
unless the user says so.

diffusers' Flax ``from_pt=True`` accepts only pickled ``diffusion_pytorch_model.bin`` and needs
torch. Most hub repos ship PyTorch safetensors only, so we read those as numpy and convert them
with diffusers' own PyTorch->Flax key conversion: no torch, nothing unpickled.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.errors import UserError, is_device_oom

# What a diffusers pipeline folder needs from the hub: configs, tokenizers, safe weight formats.
_ALLOW = ["*.json", "*.txt", "*.msgpack", "*.safetensors", "tokenizer*/*"]
_ALLOW_PICKLE = _ALLOW + ["*.bin"]


def resolve_folder(model: str, revision: str | None = None, allow_pickle: bool = False) -> Path:
    """A local folder for ``model``: the folder itself, or a hub snapshot of the id."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").exists() and not (path / "unet").is_dir():
            raise UserError(f"{model} is a folder but not a diffusers pipeline "
                            "(no model_index.json or unet/ in it)")
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise UserError(f"model {model!r} not found: give a local pipeline folder or a hub id "
                        "like 'stabilityai/sd-turbo'")
    try:
        from huggingface_hub import snapshot_download
        folder = snapshot_download(model, revision=revision,
                                   allow_patterns=_ALLOW_PICKLE if allow_pickle else _ALLOW)
    except Exception as e:  # the hub client raises many types for offline / missing repos
        raise UserError(f"could not get model {model!r} from the hub and it is not a local "
                        f"folder ({type(e).__name__}). Check the id and your network, or give "
                        "a local pipeline folder or a bundled model (shapes, tiny).") from None
    return Path(folder)


@contextlib.contextmanager
def damaged_weights(path: Path) -> Iterator[None]:
    """Turns a failed read of a weight file into one line naming it: a truncated or altered
    msgpack or safetensors file makes the readers raise anything from ValueError ("Unpack
    failed") to TypeError ("data type not understood") or SafetensorError."""
    try:
        yield
    except UserError:
        raise
    except Exception as e:  # the readers' error types are not a contract
        if is_device_oom(e):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise UserError(f"cannot read the weights in {path}: the file is damaged or incomplete "
                        f"({type(e).__name__}{': ' + first if first else ''}); download or "
                        "copy it again") from None


def read_config(folder: Path, subfolder: str, name: str = "config.json") -> dict:
    path = folder / subfolder / name
    if not path.exists():
        raise UserError(f"{path} is missing: {folder} is not a complete pipeline folder")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is damaged (not valid JSON)") from None


def cast(params: Any, dtype: Any) -> Any:
    """Casts floating leaves of a pytree (diffusers' to_bf16 uses removed jax.tree_map)."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


class _NumpyTensor:
    """Gives a numpy array the ``.numpy()`` that diffusers' converter calls on torch tensors."""

    def __init__(self, a: np.ndarray):
        self.a = a

    def numpy(self) -> np.ndarray:
        return self.a


class _ShapeOnly:
    """Stands in for a Flax model in diffusers' converter, which only needs parameter shapes."""

    def __init__(self, module: Any):
        self.module = module

    def init_weights(self, rng: jax.Array) -> Any:
        return jax.eval_shape(self.module.init_weights, rng)


def load_diffusers_module(cls: Any, folder: Path, subfolder: str, dtype: Any,
                          allow_pickle: bool) -> tuple[Any, Any]:
    """(module, params) of a diffusers Flax model class from a pipeline subfolder."""
    sub = folder / subfolder
    config = read_config(folder, subfolder)
    if (sub / "diffusion_flax_model.msgpack").exists():
        with damaged_weights(sub / "diffusion_flax_model.msgpack"):
            module, params = cls.from_pretrained(str(folder), subfolder=subfolder, dtype=dtype)
    elif (sub / "diffusion_pytorch_model.safetensors").exists():
        from diffusers.models.modeling_flax_pytorch_utils import convert_pytorch_state_dict_to_flax
        from safetensors.numpy import load_file
        module = cls.from_config(config, dtype=dtype)
        path = sub / "diffusion_pytorch_model.safetensors"
        with damaged_weights(path):
            state = {k: _NumpyTensor(v) for k, v in load_file(path).items()}
            params = convert_pytorch_state_dict_to_flax(state, _ShapeOnly(module))
    elif (sub / "diffusion_pytorch_model.bin").exists():
        if not allow_pickle:
            raise UserError(f"{sub} has only pickled PyTorch weights (.bin); loading them runs "
                            "arbitrary code from the file. Pass --allow-pickle if you trust it "
                            "(needs the 'torch' extra).")
        with damaged_weights(sub / "diffusion_pytorch_model.bin"):
            module, params = cls.from_pretrained(str(folder), subfolder=subfolder, dtype=dtype,
                                                 from_pt=True)
    else:
        raise UserError(f"no weights found in {sub} (looked for Flax msgpack and safetensors)")
    return module, cast(params, dtype)


def load_transformers_model(cls: Any, folder: Path, subfolder: str, dtype: Any,
                            allow_pickle: bool) -> tuple[Any, Any]:
    """(module, params) of a transformers Flax model (CLIP text encoders)."""
    sub = folder / subfolder
    read_config(folder, subfolder)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if (sub / "flax_model.msgpack").exists():
        path = sub / "flax_model.msgpack"
    elif (sub / "model.safetensors").exists():
        kwargs["from_pt"] = True  # transformers reads safetensors without torch
        path = sub / "model.safetensors"
    elif (sub / "pytorch_model.bin").exists():
        path = sub / "pytorch_model.bin"
        if not allow_pickle:
            raise UserError(f"{sub} has only pickled PyTorch weights (.bin); pass --allow-pickle "
                            "if you trust it (needs the 'torch' extra).")
        kwargs["from_pt"] = True
    else:
        raise UserError(f"no weights found in {sub}")
    # _do_init=False skips a random initialisation that would compile the whole encoder.
    with damaged_weights(path):
        model, params = cls.from_pretrained(str(sub), _do_init=False, **kwargs)
    return model.module, cast(params, dtype)


def dtype_from_name(name: str) -> Any:
    table = {"float32": jnp.float32, "fp32": jnp.float32, "bfloat16": jnp.bfloat16,
             "bf16": jnp.bfloat16, "float16": jnp.float16, "fp16": jnp.float16,
             "float64": jnp.float64}
    if name not in table:
        raise UserError(f"unknown dtype {name!r}: use float32 or bfloat16")
    return table[name]


