"""The texts the exported-program cache's file names are digests of (see `exported`).

Each must be the same in every process that would trace the same program and differ whenever
the program could: static values (`stable_repr`), jax's trace-changing options, shardings,
devices, package versions, and jaxsteer's own source.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax
from jax.sharding import NamedSharding, Sharding, SingleDeviceSharding

ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# The packages whose code is traced into jaxsteer's programs (its networks are its own).
_PACKAGES = ("jax", "jaxlib", "flax", "transformers")


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 of jaxsteer's .py files (paths and contents): any edit of the package is a miss."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@lru_cache(maxsize=1)
def _versions() -> tuple[str, ...]:
    # lazy: environment imports models.bundled, and so every model family, which `import
    # jaxsteer` (this module is part of it) would then import too
    from jaxsteer.environment import package_versions
    return (*(f"{n}={v}" for n, v in package_versions(_PACKAGES).items()),
            f"python={sys.version_info[:2]}")


def stable_repr(value: Any) -> str | None:
    """A text for a static value that is the same in every process, or None when there is none.

    Scalars, strings, enums, tuples / lists / dicts of them, and dataclasses (their class and
    the fields that take part in ``==``: two values equal as jit static arguments get one text).
    Anything else counts only if its ``repr`` holds no memory address.
    """
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        parts = [stable_repr(v) for v in value]
        return None if None in parts else f"{type(value).__name__}(" + ",".join(parts) + ")"
    if isinstance(value, dict):
        items = [(stable_repr(k), stable_repr(v)) for k, v in value.items()]
        if any(None in kv for kv in items):
            return None
        return "dict(" + ",".join(sorted(f"{k}:{v}" for k, v in items)) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = []
        for f in dataclasses.fields(value):
            if f.compare:
                text = stable_repr(getattr(value, f.name))
                if text is None:
                    return None
                parts.append(f"{f.name}={text}")
        cls = type(value)
        return f"{cls.__module__}.{cls.__qualname__}(" + ",".join(parts) + ")"
    if callable(value):
        return None   # functions: their repr names them, not what they compute
    text = repr(value)
    return None if ADDRESS.search(text) else text


def trace_config() -> str | None:
    """The jax config options that change traces, as text; None if one has no stable text.

    Uses jax's own list (``trace_context``, what jit keys its trace cache on) when present.
    """
    try:
        from jax._src import config as jax_config
        names, values = jax_config.trace_context_names(), jax_config.trace_context()
    except Exception:  # noqa: BLE001 - private API: fall back to the options known to matter
        names = ("jax_default_matmul_precision", "jax_enable_x64", "jax_threefry_partitionable",
                 "jax_numpy_rank_promotion", "jax_numpy_dtype_promotion", "jax_softmax_custom_jvp",
                 "jax_default_prng_impl", "jax_use_shardy_partitioner")
        values = tuple(getattr(jax.config, n, None) for n in names)
    parts = []
    for name, value in zip(names, values):
        if name == "axis_env_state":
            # Top level: no named axes. Under vmap/shard_map the caller gets plain jit anyway.
            if getattr(value, "axis_sizes", None) or getattr(value, "spmd_axis_names", None):
                return None
            continue
        text = stable_repr(value)
        if text is None:
            return None
        parts.append(f"{name}={text}")
    return ";".join(parts)


def describe_sharding(s: Any) -> str | None:
    """Mesh axis names and sizes, axis types, PartitionSpec, device count; None if unknown."""
    if isinstance(s, NamedSharding):
        mesh = s.mesh
        axis_types = getattr(mesh, "axis_types", None)
        return (f"named(axes={tuple(mesh.axis_names)},sizes={tuple(mesh.axis_sizes)},"
                f"types={axis_types},spec={s.spec},memory={s.memory_kind},n={mesh.size})")
    if isinstance(s, SingleDeviceSharding):
        return f"single(memory={s.memory_kind})"
    return None


def _devices(shardings: Sequence[Sharding]) -> list:
    return [d for s in shardings for d in s.device_set]


def describe_devices(shardings: Sequence[Sharding]) -> str:
    """Platform, kind and runtime version of the devices the program runs on, and of the default
    device (trace-time choices such as ``attention="auto"`` look at ``jax.devices()[0]``)."""
    def one(d) -> str:
        return f"{d.platform}|{d.device_kind}|{d.client.platform_version}"
    return one(min(_devices(shardings), key=lambda d: d.id)) + "\n" + one(jax.devices()[0])


def export_platform(shardings: Sequence[Sharding]) -> str:
    """``jax.export``'s name for the devices' platform ("cuda" / "rocm" for "gpu")."""
    d = min(_devices(shardings), key=lambda dev: dev.id)
    if d.platform == "gpu":
        return "rocm" if "rocm" in d.client.platform_version.lower() else "cuda"
    return d.platform


def digest(key: str, signature: str, devices: str) -> str:
    parts = (key, signature, devices, *_versions(), trace_config() or "", source_hash())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
