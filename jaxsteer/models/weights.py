"""Finding a pipeline folder: a local folder or a hub snapshot (configs, tokenizers and safe
weight formats only, pickled ``.bin`` files only when the user allows them).

Reading and converting the weights is `models.nn.load` / `models.nn.convert` (no torch).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from jaxsteer.errors import UserError, is_device_oom

# What a diffusers pipeline folder needs from the hub: configs, tokenizers, safe weight formats.
# Weights only inside the component folders: repositories such as FLUX.1-schnell (a 24 GB
# flux1-schnell.safetensors, ae.safetensors) and sd-turbo keep single-file checkpoints for
# other tools beside them, at the top level, which the loaders never read.
_ALLOW = ["*.json", "*.txt", "*/*.msgpack", "*/*.safetensors", "tokenizer*/*"]
_ALLOW_PICKLE = _ALLOW + ["*/*.bin"]


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


def dtype_from_name(name: str) -> Any:
    table = {"float32": jnp.float32, "fp32": jnp.float32, "bfloat16": jnp.bfloat16,
             "bf16": jnp.bfloat16, "float16": jnp.float16, "fp16": jnp.float16,
             "float64": jnp.float64}
    if name not in table:
        raise UserError(f"unknown dtype {name!r}: use float32 or bfloat16")
    return table[name]


