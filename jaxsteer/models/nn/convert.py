"""PyTorch-layout weights to our Flax trees, without torch and without unpickling anything.

Reads ``*.safetensors`` (one file, or shards listed in ``*.safetensors.index.json``; fp32,
fp16 and bf16) as numpy, then maps diffusers / transformers state-dict names onto the module's
parameter tree: ``down_blocks.0.resnets.0.conv1.weight`` -> ``down_blocks_0/resnets_0/conv1/
kernel`` (conv OIHW -> HWIO, linear transposed, norm weight -> scale, embedding weight ->
embedding). The target tree (shapes from ``jax.eval_shape``) decides every name, so one
converter serves the UNet, the VAE and both CLIP encoders, and every missing, unexpected or
misshapen tensor is an error that names it.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
           "BOOL": np.bool_}
# Buffers some checkpoints carry that are not parameters.
_BUFFERS = ("position_ids",)
# Old diffusers VAE attention names -> the names in diffusers' Flax VAE (and ours).
_ALIASES = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as read-only numpy views of a memory map (bf16 as
    ml_dtypes.bfloat16): a 5 GB UNet file is not read into memory twice."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    empty = Path(path).stat().st_size <= 8 + n  # np.memmap refuses a zero-length map
    data = np.zeros(0, np.uint8) if empty else np.memmap(path, np.uint8, "r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[name] = data[start:end].view(_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray]) -> None:
    """Writes numpy arrays as one safetensors file (what ``read_safetensors`` reads back)."""
    names = {np.dtype(v): k for k, v in _DTYPES.items()}
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def find_weights(sub: Path, stem: str, variant: str | None = None) -> list[Path] | None:
    """The safetensors files of ``stem`` (``diffusion_pytorch_model`` or ``model``) in ``sub``:
    one file or the shards of an index; ``variant`` (``fp16``) first when given; None if none."""
    names = ([f"{stem}.{variant}"] if variant else []) + [stem]
    for name in names:
        if (sub / f"{name}.safetensors").exists():
            return [sub / f"{name}.safetensors"]
        index = sub / f"{name}.safetensors.index.json"
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [sub / s for s in shards]
    return None


def read_state_dict(files: list[Path]) -> dict[str, np.ndarray]:
    state: dict[str, np.ndarray] = {}
    for f in files:
        state.update(read_safetensors(f))
    return state


def _norm(parts: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Name parts with ``x_0`` split into ``x``, ``0``: diffusers-Flax ``down_blocks_0``, PyTorch
    ``down_blocks.0`` and transformers-Flax ``layers/0`` all become (``down_blocks``, ``0``)."""
    out: list[str] = []
    for p in parts:
        m = re.fullmatch(r"(.+?)_(\d+)", p)
        out.extend((m.group(1), m.group(2)) if m else (p,))
    return tuple(out)


def _leaf(name: str, tensor: np.ndarray, target: Any) -> np.ndarray:
    """The PyTorch tensor in the layout of the Flax leaf ``name`` of shape ``target.shape``."""
    if name == "kernel":
        if tensor.ndim == 4 and len(target.shape) == 4:
            tensor = tensor.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        else:
            if tensor.ndim == 4 and tensor.shape[2:] == (1, 1):  # 1x1 conv stored for a linear
                tensor = tensor[:, :, 0, 0]
            tensor = tensor.T
    return tensor


def pt_to_flax(state: Mapping[str, np.ndarray], target: Any, dtype: Any = None,
               strict: bool = True) -> dict:
    """The Flax parameter tree of shape ``target`` from a PyTorch-layout state dict.

    Args:
      state: name -> numpy array, diffusers' or transformers' PyTorch names.
      target: the module's parameter tree (arrays or ShapeDtypeStructs).
      dtype: cast floating tensors to this dtype (default: each target leaf's dtype).
      strict: raise on tensors that match no parameter (buffers excepted).
    """
    flat = {tuple(str(getattr(k, "key", k)) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(target)[0]}
    modules: dict[tuple[str, ...], tuple[str, ...]] = {}
    for path in flat:
        modules.setdefault(_norm(path[:-1]), path[:-1])
    tops = sorted({path[0] for path in flat if len(path) > 2})
    out: dict[tuple[str, ...], np.ndarray] = {}
    unexpected = []
    for key, tensor in state.items():
        *mod, last = key.split(".")
        if last in _BUFFERS:
            continue
        found = modules.get(_norm(mod))
        if found is None and mod:
            # transformers 5 saves CLIPTextModel without its wrapper's name ("embeddings...",
            # not "text_model.embeddings..."): the one top-level module the rest fits under
            under = {modules[_norm([t, *mod])] for t in tops if _norm([t, *mod]) in modules}
            found = under.pop() if len(under) == 1 else None
        if found is None and mod:
            alias = ".".join(mod[-2:]) if mod[-1] == "0" else mod[-1]
            if alias in _ALIASES:
                stem = mod[:-2] if mod[-1] == "0" else mod[:-1]
                found = modules.get(_norm([*stem, _ALIASES[alias]]))
        if found is None:
            unexpected.append(key)
            continue
        names = {"weight": ("kernel", "scale", "embedding"), "gamma": ("scale",),
                 "beta": ("bias",), "bias": ("bias",)}.get(last, (last,))
        leaf = next((n for n in names if found + (n,) in flat), None)
        if leaf is None:
            unexpected.append(key)
            continue
        ref = flat[found + (leaf,)]
        arr = _leaf(leaf, np.asarray(tensor), ref)
        if tuple(arr.shape) != tuple(ref.shape):
            raise ValueError(f"weight {key} has shape {tuple(tensor.shape)}; the model expects "
                             f"{tuple(ref.shape)} at {'/'.join(found + (leaf,))}")
        out[found + (leaf,)] = arr.astype(dtype or ref.dtype)
    missing = sorted("/".join(p) for p in flat if p not in out)
    if missing:
        raise ValueError(f"{len(missing)} parameters missing from the weights, e.g. {missing[:5]}")
    if strict and unexpected:
        raise ValueError(f"{len(unexpected)} weights match no parameter, e.g. {unexpected[:5]}")
    tree: dict = {}
    for path, arr in out.items():
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = arr
    return tree


def flax_to_pt(params: Any, vae: bool = False) -> dict[str, np.ndarray]:
    """The inverse, as diffusers / transformers name PyTorch tensors (for tests and fixtures).

    Index suffixes become ``.N`` except diffusers' ``linear_1`` / ``linear_2``; ``vae`` names
    the mid-block attention to_q / to_k / to_v / to_out.0 as current diffusers does.
    """
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        parts = [str(getattr(k, "key", k)) for k in path]
        a = np.asarray(leaf)
        if parts[-1] == "kernel":
            a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T
        out[pt_name(parts, vae)] = np.ascontiguousarray(a)
    return out


def pt_name(parts: list[str] | tuple[str, ...], vae: bool = False) -> str:
    """The PyTorch tensor name of a Flax parameter path (`flax_to_pt`'s naming, one leaf)."""
    rename = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
    mod = [p if p.startswith("linear_") else re.sub(r"_(\d+)$", r".\1", p) for p in parts[:-1]]
    if vae and mod and mod[-1] in rename:
        mod[-1] = rename[mod[-1]]
    name = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(parts[-1], parts[-1])
    return ".".join(mod + [name])
