"""`jaxsteer env`: what this machine gives jaxsteer, the first command to run on a new box.

Backend, devices and their memory, processes, package versions, the defaults `auto` resolves
to here, and the compilation caches: everything a bug report or a slow first run asks about.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import sys
from pathlib import Path

import jax

from jaxsteer.config import opt
from jaxsteer.models import resolve_attention, resolve_dtype, resolve_remat_policy
from jaxsteer.models.bundled import cache_dir

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "diffusers",
            "transformers", "safetensors")


@dataclasses.dataclass(frozen=True)
class EnvRun:
    quiet: bool = opt(False, "print only the JSON summary, not the readable lines on stderr")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions by distribution name ('-' where one is missing)."""
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"
    return {n: version(n) for n in names}


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (0 where it does not exist)."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def device_info(device) -> dict:
    """One device: kind, platform and, where the runtime says, its memory in GiB."""
    info = {"id": device.id, "platform": device.platform, "kind": device.device_kind,
            "process": device.process_index}
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - a runtime without statistics is "unknown"
        stats = {}
    if "bytes_limit" in stats:
        info["memory_gib"] = round(stats["bytes_limit"] / 2**30, 2)
        info["in_use_gib"] = round(stats.get("bytes_in_use", 0) / 2**30, 2)
    return info


def defaults() -> dict[str, str]:
    """What `--dtype/--attention/--remat-policy auto` resolve to on this backend."""
    dtype = resolve_dtype("auto")
    return {"dtype": dtype, "attention": resolve_attention("auto", dtype),
            "remat_policy": resolve_remat_policy("auto")}


def caches() -> dict:
    """The compilation cache folders (XLA's and jaxsteer's exported traces) and their sizes."""
    xla = jax.config.jax_compilation_cache_dir
    root = cache_dir()
    return {"jaxsteer_cache": str(root), "xla_cache": xla,
            "xla_cache_mib": round(folder_bytes(Path(xla)) / 2**20, 1) if xla else 0.0,
            "total_mib": round(folder_bytes(root) / 2**20, 1)}


def run(cfg: EnvRun) -> dict:
    devices = jax.local_devices()
    result = {"backend": jax.default_backend(), "process_index": jax.process_index(),
              "process_count": jax.process_count(), "local_devices": len(devices),
              "global_devices": jax.device_count(),
              "devices": [device_info(d) for d in devices],
              "python": sys.version.split()[0], "versions": package_versions(),
              "defaults": defaults(), "caches": caches(),
              "env": {k: v for k, v in os.environ.items()
                      if k.startswith(("JAX_", "XLA_", "JAXSTEER_", "CUDA_VISIBLE"))}}
    if not cfg.quiet:
        print(readable(result), file=sys.stderr)
    return result


def readable(r: dict) -> str:
    """The summary as a few lines a person reads."""
    first = r["devices"][0]
    memory = f", {first['memory_gib']} GiB each" if "memory_gib" in first else ""
    v, d, c = r["versions"], r["defaults"], r["caches"]
    return "\n".join([
        f"backend   {r['backend']}: {r['local_devices']} local x {first['kind']}{memory}; "
        f"{r['global_devices']} devices in {r['process_count']} process(es)",
        f"versions  python {r['python']}, jax {v['jax']}, jaxlib {v['jaxlib']}, "
        f"flax {v['flax']}, optax {v['optax']}, orbax {v['orbax-checkpoint']}",
        f"defaults  --dtype {d['dtype']} --attention {d['attention']} "
        f"--remat-policy {d['remat_policy']}",
        f"caches    {c['jaxsteer_cache']} ({c['total_mib']} MiB; XLA's: {c['xla_cache']}, "
        f"{c['xla_cache_mib']} MiB)"])
