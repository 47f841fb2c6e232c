"""A `jax.jit` whose traced program is cached on disk with `jax.export`, beside XLA's cache.

Why: JAX's persistent compilation cache skips XLA's compile, but a fresh process still traces the
function in Python first (for a diffusers UNet under ``jax.grad`` that is ~10 s). ``cached_jit``
saves the traced StableHLO program (`jax.export`, a flatbuffer: no pickle) on the first call of a
signature and, in later processes, jits ``exported.call`` instead of tracing the function again.
The first process also runs the *deserialized* program, so every process lowers the same module
and the second one hits XLA's persistent cache.

Files: ``<jax_compilation_cache_dir>/jaxsteer-exported/<digest>.bin`` holding a magic line, the
sha256 of the payload and the payload (``Exported.serialize()``). The digest covers:

- the caller's ``key``: a deterministic description of everything static the function closes
  over (the caller decides; ``None`` disables the cache),
- the argument signature: pytree structure, leaf shapes / dtypes / weak types, and the in/out
  shardings (mesh axis names and sizes, axis types, PartitionSpecs, device count),
- the platform and device kind of the mesh's devices,
- jax / jaxlib / flax / transformers versions and the Python minor version,
- the jax config options that change traces (matmul precision, x64, threefry, ...),
- a hash of jaxsteer's own ``.py`` files (any edit of the package invalidates every entry).

(`export_keys` computes these texts.)

So a stale entry is never read: anything that changes the program changes the file name. Entries
are never deleted (delete the folder to reclaim space). A file that fails its checksum, does not
deserialize, or does not fit the arguments is ignored and rewritten. Any failure to export, read
or write falls back to plain ``jax.jit`` with one warning: the cache can cost time, never
correctness.

Disabled (plain ``jax.jit``) when ``key`` is None, when no cache folder is configured, when the
environment sets ``JAXSTEER_EXPORT_CACHE=0``, when flatbuffers (needed by ``jax.export``'s
serialization) is missing, or for calls under an outer transformation (tracer arguments).

Caveats: typed PRNG keys pass through as they are (``jax.export`` keeps extended dtypes);
custom-call targets without a stability guarantee (cuDNN flash attention) are allowed, which is
safe because the digest pins the exact jax / jaxlib versions; donation is not supported (the
wrapper takes no ``donate_argnums``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax
from jax.sharding import Sharding

from jaxsteer import records
from jaxsteer.export_keys import (
    ADDRESS,
    describe_devices,
    describe_sharding,
    digest,
    export_platform,
    trace_config,
)

ENV = "JAXSTEER_EXPORT_CACHE"
SUBDIR = "jaxsteer-exported"
MAGIC = b"jaxsteer-exported v1\n"


# --- where -----------------------------------------------------------------------------------


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder of exported programs, or None when the cache is off.

    ``cache_dir`` defaults to ``jax.config.jax_compilation_cache_dir`` (read at call time, so a
    cache configured after the wrapper was built still counts).
    """
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    root = cache_dir if cache_dir is not None else jax.config.jax_compilation_cache_dir
    return Path(root) / SUBDIR if root else None


@lru_cache(maxsize=1)
def _serialization_available() -> bool:
    if importlib.util.find_spec("flatbuffers") is None:
        warnings.warn("jaxsteer: the exported-program cache is off (jax.export's serialization "
                      "needs the 'flatbuffers' package)", stacklevel=3)
        return False
    return True


# --- the file ---------------------------------------------------------------------------------


def pack(payload: bytes) -> bytes:
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def unpack(blob: bytes) -> bytes | None:
    """The payload, or None for a truncated or corrupt file."""
    head = len(MAGIC) + 65
    if not blob.startswith(MAGIC) or len(blob) < head:
        return None
    checksum, payload = blob[len(MAGIC):head - 1], blob[head:]
    return payload if hashlib.sha256(payload).hexdigest().encode() == checksum else None


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~records.umask())  # a shared cache stays readable (mkstemp: 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the wrapper ------------------------------------------------------------------------------


def _leaf_type(x: Any) -> tuple[tuple[int, ...], Any, bool]:
    """(shape, dtype, weak_type) of an argument leaf (arrays, scalars, ShapeDtypeStructs)."""
    if isinstance(x, jax.ShapeDtypeStruct):
        return tuple(x.shape), x.dtype, bool(x.weak_type)
    t = jax.typeof(x)
    return tuple(t.shape), t.dtype, bool(getattr(t, "weak_type", False))


def _is_sharding_leaf(x: Any) -> bool:
    return x is None or isinstance(x, Sharding)


class ExportedJit:
    """``jax.jit(fn, in_shardings, out_shardings)`` whose traces are cached with `jax.export`.

    Supports what jaxsteer uses of a jitted function: ``__call__(*args)`` and ``lower(*args)``
    (positional arguments only). Each argument signature gets its own jitted callable: the
    loaded or freshly exported program, or plain jit when caching it failed.
    """

    def __init__(self, fn: Callable, *, in_shardings: tuple, out_shardings: Any, key: str,
                 cache_dir: str | os.PathLike | None = None):
        self.fn, self.key, self.cache_dir = fn, key, cache_dir
        self.in_shardings, self.out_shardings = in_shardings, out_shardings
        self.plain = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)
        self._by_signature: dict[Any, Callable] = {}
        self.last_path: Path | None = None     # the file of the last signature resolved

    def __call__(self, *args):
        return self._target(args)(*args)

    def lower(self, *args):
        return self._target(args).lower(*args)

    def _cache_size(self) -> int:
        targets = {id(t): t for t in (self.plain, *self._by_signature.values())}
        return sum(t._cache_size() for t in targets.values())

    def _target(self, args: tuple) -> Callable:
        folder = cache_folder(self.cache_dir)
        if folder is None or not _serialization_available():
            return self.plain
        leaves, treedef = jax.tree.flatten(args)
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return self.plain   # under an outer transformation: nothing to gain
        try:
            types = tuple(_leaf_type(x) for x in leaves)
            memo = (folder, treedef, types, trace_config())
            hash(memo)
        except Exception:  # noqa: BLE001 - an argument jit would reject: let jit say why
            return self.plain
        target = self._by_signature.get(memo)
        if target is None:
            target = self._resolve(folder, args, treedef, types)
            self._by_signature[memo] = target
        return target

    def _resolve(self, folder: Path, args: tuple, treedef, types) -> Callable:
        """Loads or exports the program of this signature; plain jit (with a warning) on failure."""
        try:
            leaf_shardings = self._leaf_shardings(args)
            if not all(s.is_fully_addressable for s in leaf_shardings):
                # A mesh over several processes: a process that missed the file would run a
                # freshly traced program beside others running the stored one. Not worth it.
                return self.plain
            sig = self._signature(treedef, types, leaf_shardings)
            if sig is None or trace_config() is None:
                return self.plain
            path = folder / f"{digest(self.key, sig, describe_devices(leaf_shardings))}.bin"
            self.last_path = path
            specs = [jax.ShapeDtypeStruct(shape, dtype, weak_type=weak, sharding=s)
                     for (shape, dtype, weak), s in zip(types, leaf_shardings)]
            exported = _read(path, specs)
            if exported is None:
                exported = self._export(path, treedef, specs, leaf_shardings)
            return self._jit_exported(exported, args)
        except Exception as e:  # noqa: BLE001 - the cache must never break a run
            warnings.warn(f"jaxsteer: exported-program cache not used for {self.key[:80]!r} "
                          f"({type(e).__name__}: {str(e)[:200]}); tracing as usual", stacklevel=4)
            return self.plain

    def _leaf_shardings(self, args: tuple) -> list[Sharding]:
        if len(self.in_shardings) != len(args):
            raise ValueError(f"{len(args)} arguments for {len(self.in_shardings)} in_shardings")
        per_arg = jax.tree.broadcast(tuple(self.in_shardings), args, is_leaf=_is_sharding_leaf)
        # None subtrees of the arguments (no leaves) come back as None: dropped here.
        shardings = jax.tree.leaves(per_arg, is_leaf=lambda x: isinstance(x, Sharding))
        if len(shardings) != len(jax.tree.leaves(args)):
            raise ValueError("every argument leaf needs a sharding")
        return shardings

    def _signature(self, treedef, types, leaf_shardings) -> str | None:
        shardings = [describe_sharding(s) for s in leaf_shardings]
        out = [describe_sharding(s) for s in
               jax.tree.leaves(self.out_shardings, is_leaf=_is_sharding_leaf)]
        tree = str(treedef)
        if None in shardings or None in out or ADDRESS.search(tree):
            return None
        leaves = [f"{shape}:{dtype}:{weak}" for shape, dtype, weak in types]
        return "\n".join([tree, *leaves, *shardings, "out", *out])

    def _export(self, path: Path, treedef, specs, leaf_shardings) -> jax.export.Exported:
        """Traces ``fn`` once over flat arguments, writes the program, returns it as re-read."""
        fn = self.fn

        def flat(*leaves):
            return fn(*jax.tree.unflatten(treedef, leaves))

        # Flat arguments: the exported input tree has only built-in nodes, which serialize.
        flat.__name__ = getattr(fn, "__name__", getattr(getattr(fn, "func", None), "__name__",
                                                         "kernel"))
        jitted = jax.jit(flat, in_shardings=tuple(leaf_shardings),
                         out_shardings=self.out_shardings)
        # Custom calls without a stability promise (cuDNN attention) are fine here: the digest
        # pins the exact jax/jaxlib versions, so a file is only read by the version that wrote it.
        exported = jax.export.export(
            jitted, platforms=(export_platform(leaf_shardings),),
            disabled_checks=[jax.export.DisabledSafetyCheck.custom_call("ALL")])(*specs)
        payload = bytes(exported.serialize())
        try:
            write_atomic(path, pack(payload))
        except OSError as e:
            warnings.warn(f"jaxsteer: could not write {path} ({e}); the program is not cached",
                          stacklevel=5)
        # Run what a later process will load, so both compile the same module (one XLA entry).
        return jax.export.deserialize(bytearray(payload))

    def _jit_exported(self, exported: jax.export.Exported, args: tuple) -> Callable:
        def call(*args):
            return exported.call(*jax.tree.leaves(args))

        call.__name__ = exported.fun_name
        jitted = jax.jit(call, in_shardings=self.in_shardings, out_shardings=self.out_shardings)
        # Checks the program fits (cheap: traces only the call): a mismatch falls back here.
        jax.eval_shape(jitted, *args)
        return jitted


def _read(path: Path, specs: Sequence[jax.ShapeDtypeStruct]) -> jax.export.Exported | None:
    """The exported program in ``path`` if it is whole and fits ``specs``; else None."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    payload = unpack(blob)
    if payload is None:
        warnings.warn(f"jaxsteer: ignoring the corrupt exported program {path}", stacklevel=5)
        return None
    try:
        exported = jax.export.deserialize(bytearray(payload))
    except Exception as e:  # noqa: BLE001 - e.g. written by another serialization version
        warnings.warn(f"jaxsteer: ignoring {path} ({type(e).__name__}: {str(e)[:200]})",
                      stacklevel=5)
        return None
    avals = [(tuple(a.shape), a.dtype) for a in exported.in_avals]
    if avals != [(tuple(s.shape), s.dtype) for s in specs]:
        warnings.warn(f"jaxsteer: ignoring {path} (its arguments do not match)", stacklevel=5)
        return None
    return exported


def cached_jit(fn: Callable, *, in_shardings: tuple, out_shardings: Any, key: str | None,
               cache_dir: str | os.PathLike | None = None) -> Callable:
    """``jax.jit(fn, in_shardings=..., out_shardings=...)``, with its traces cached on disk.

    ``key`` must describe, deterministically across processes, everything static ``fn`` closes
    over; None gives plain ``jax.jit``. ``cache_dir`` defaults to JAX's compilation cache folder.
    """
    if key is None:
        return jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings)
    return ExportedJit(fn, in_shardings=in_shardings, out_shardings=out_shardings, key=key,
                       cache_dir=cache_dir)
