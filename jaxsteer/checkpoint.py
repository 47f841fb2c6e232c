"""Checkpoints of DirectionSets (and of SAE training state) with Orbax: the only Orbax importer.

A checkpoint is one folder holding an Orbax composite of ``arrays`` (StandardSave of the
DirectionSet's arrays), ``meta`` (JsonSave: format, metadata, shapes, CRC32 of every array) and,
optionally, ``train`` (StandardSave of the SAE state's leaves, so training can continue).

Writes are atomic: Orbax commits into a hidden sibling folder (itself via a temporary path),
we add ``jaxsteer_files.json`` (size and CRC32 of every file) and rename the sibling to the
final path, so the path holds a whole checkpoint or none, and an overwrite replaces the old one
only once the new one is complete. Reads check the file list first and turn every failure
(missing, truncated, corrupted, foreign, incompatible) into one `UserError` line.

Library use::

    ds = jaxsteer.decompose.pca(grads_nd, k=16)
    jaxsteer.checkpoint.save(ds, "out/monster_pca")
    ds = jaxsteer.checkpoint.load("out/monster_pca", expect={"embed_dim": 2048})
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxsteer import records
from jaxsteer.decompose.directions import DirectionSet
from jaxsteer.decompose.sae import SAEConfig, SAEParams, SAEState, init_state
from jaxsteer.errors import UserError

FORMAT = "jaxsteer.DirectionSet"
FORMAT_VERSION = 1
FILES = "jaxsteer_files.json"
_FIELDS = ("directions", "mean", "singular_values", "explained_variance_ratio", "density")


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


def _jsonable(obj: Any) -> Any:
    """A JSON round trip (tuples -> lists, numpy scalars -> numbers, paths -> strings)."""
    def default(o: Any) -> Any:
        if isinstance(o, (np.generic, np.ndarray)) and np.ndim(o) == 0:
            return o.item()
        if isinstance(o, np.ndarray) and o.size <= 64:
            return o.tolist()
        return str(o)
    return json.loads(json.dumps(obj, default=default))


def _flat_arrays(ds: DirectionSet) -> dict[str, Any]:
    arrays = {f: np.asarray(getattr(ds, f)) for f in _FIELDS if getattr(ds, f) is not None}
    if ds.sae is not None:
        arrays["sae"] = {f.name: np.asarray(getattr(ds.sae, f.name))
                         for f in dataclasses.fields(ds.sae)}
    return arrays


def _checksums(tree: dict[str, Any], prefix: str = "") -> dict[str, int]:
    out = {}
    for name, v in tree.items():
        if isinstance(v, dict):
            out.update(_checksums(v, f"{prefix}{name}/"))
        else:
            out[prefix + name] = _crc(v)
    return out


def save(ds: DirectionSet, path: str | Path, *, train_state: SAEState | None = None,
         extras: Mapping[str, bytes] | None = None, overwrite: bool = False) -> Path:
    """Saves a DirectionSet (and optionally the SAE state to continue training) to ``path``.

    Args:
        ds: the direction set.
        path: checkpoint folder (created; its parent too).
        train_state: SAE training state (params, Adam state, step) to store alongside.
        extras: small files to put in the checkpoint folder, {file name: bytes} (e.g. the
            spectrum PNG); they are committed and checksummed with it.
        overwrite: replace an existing checkpoint; otherwise an existing path is a UserError.

    Returns:
        The absolute checkpoint path.
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists: choose another output or pass overwrite (--overwrite)")
    for name in extras or {}:
        if "/" in name or name in ("arrays", "meta", "train", FILES) or name.startswith("_"):
            raise ValueError(f"extra file name {name!r} would clash with the checkpoint's own")
    from jaxsteer import __version__  # at call time: jaxsteer/__init__ imports this module

    arrays = _flat_arrays(ds)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "jaxsteer_version": __version__, "jax_version": jax.__version__,
            "metadata": _jsonable(ds.metadata), "checksums": _checksums(arrays),
            "shapes": {f: list(np.shape(a)) for f, a in arrays.items() if f != "sae"}}
    items = {"arrays": ocp.args.StandardSave(arrays)}
    if train_state is not None:
        leaves = {f"{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(train_state))}
        items["train"] = ocp.args.StandardSave(leaves)
        meta["train"] = {"checksums": _checksums(leaves), "step": int(train_state.step),
                         "cfg": _jsonable(dataclasses.asdict(train_state.cfg)),
                         "total_steps": train_state.total_steps,
                         "dead_after": train_state.dead_after,
                         "d": int(train_state.params.b_pre.shape[0])}
    items["meta"] = ocp.args.JsonSave(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Orbax commits into `staging` (its own tmp-then-rename); we add the file list and only then
    # rename `staging` to `path`, so `path` is whole (file list included) or absent. An
    # overwrite swaps the old one out only after the new one is complete.
    staging = path.with_name(f".{path.name}.jaxsteer-new")
    shutil.rmtree(staging, ignore_errors=True)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        ckptr.save(staging, args=ocp.args.Composite(**items))
    for name, data in (extras or {}).items():
        records.atomic_write_bytes(staging / name, data)
    records.write_json(staging / FILES, _file_list(staging))
    old = path.with_name(f".{path.name}.jaxsteer-old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
    staging.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _file_list(root: Path) -> dict[str, list[int]]:
    """{relative path: [size, crc32]} of every file under ``root`` except the list itself."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != FILES:
            data = p.read_bytes()
            out[p.relative_to(root).as_posix()] = [len(data), zlib.crc32(data)]
    return out


def _check_files(path: Path) -> None:
    """Compares the folder with the file list written at save time, before Orbax reads it.

    Orbax (through TensorStore) does detect most damage, but a truncated data file also makes
    it print an asyncio traceback from a background thread; checking first avoids both.
    """
    try:
        listed = records.read_json(path / FILES)
    except FileNotFoundError:
        raise UserError(f"{path} is not a complete jaxsteer checkpoint (no {FILES})") from None
    except ValueError:
        raise UserError(f"checkpoint {path} is corrupted ({FILES} is not valid JSON)") from None
    if not isinstance(listed, dict):
        raise UserError(f"checkpoint {path} is corrupted ({FILES} holds no file list)")
    damaged = []
    for rel, (size, crc) in listed.items():
        f = path / rel
        if not f.is_file():
            damaged.append(f"{rel} missing")
        elif f.stat().st_size != size:
            damaged.append(f"{rel} truncated ({f.stat().st_size} of {size} bytes)")
        elif zlib.crc32(f.read_bytes()) != crc:
            damaged.append(f"{rel} corrupted (checksum)")
    if damaged:
        more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
        raise UserError(f"checkpoint {path} is damaged: {', '.join(damaged[:3])}{more}")


def _restore(path: Path, **items: Any) -> dict[str, Any]:
    """Restores the named items, turning every Orbax / TensorStore failure into a UserError."""
    if not path.exists():
        leftovers = sorted(p.name for p in path.parent.glob(f"*{path.name}*")
                           if "tmp" in p.name or "jaxsteer-new" in p.name)
        hint = f" (an interrupted write left {leftovers[0]})" if leftovers else ""
        raise UserError(f"no checkpoint at {path}{hint}")
    if not path.is_dir() or not (path / "meta").is_dir() or not (path / "arrays").is_dir():
        raise UserError(f"{path} is not a jaxsteer checkpoint (no meta/ and arrays/ items)")
    _check_files(path)
    try:
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
            return dict(ckptr.restore(path, args=ocp.args.Composite(**items)))
    except Exception as e:  # noqa: BLE001 - any failure here is a damaged checkpoint
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"checkpoint {path} is truncated or corrupted and cannot be read "
                        f"({type(e).__name__}: {first})") from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint's JSON item (format, metadata, shapes, checksums), checked for format."""
    path = Path(path).absolute()
    meta = _restore(path, meta=ocp.args.JsonRestore())["meta"]
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a jaxsteer DirectionSet checkpoint")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{path} has format version {meta['format_version']}; this jaxsteer "
                        f"reads up to {FORMAT_VERSION}: upgrade jaxsteer")
    return meta


def _verify(path: Path, tree: dict[str, Any], sums: dict[str, int]) -> None:
    got = _checksums(tree)
    bad = sorted(k for k in sums if got.get(k) != sums[k])
    if bad or set(got) != set(sums):
        raise UserError(f"checkpoint {path} is corrupted: arrays {', '.join(bad) or 'set'} do "
                        "not match their checksums")


def _mismatches(meta: Mapping[str, Any], dim: int, expect: Mapping[str, Any]) -> list[str]:
    have = {"embed_dim": dim, "dim": dim} | dict(meta)
    out = []
    for key, want in expect.items():
        if key not in have:
            out.append(f"{key}: the checkpoint has none, expected {want!r}")
        elif _jsonable(have[key]) != _jsonable(want):
            out.append(f"{key}: the checkpoint has {have[key]!r}, expected {want!r}")
    return out


def load(path: str | Path, expect: Mapping[str, Any] | None = None) -> DirectionSet:
    """Loads a DirectionSet, checking that it is whole and fits what the caller will use it for.

    Args:
        path: checkpoint folder written by `save`.
        expect: metadata values it must have, e.g. ``{"embed_dim": 2048, "model": ..., "token":
            ...}``. ``embed_dim`` falls back to the directions' width when the metadata lacks it.

    Returns:
        The DirectionSet, arrays bit-identical to those saved.

    Raises:
        UserError: missing, truncated, corrupted, foreign or incompatible checkpoint; for an
            incompatible one the message lists every mismatching field.
    """
    path = Path(path).absolute()
    meta = read_meta(path)
    arrays = _restore(path, arrays=ocp.args.StandardRestore())["arrays"]
    arrays = jax.tree.map(np.asarray, dict(arrays))
    _verify(path, arrays, meta.get("checksums", {}))
    dim = int(arrays["directions"].shape[-1])
    bad = _mismatches(meta["metadata"], dim, expect or {})
    if bad:
        raise UserError(f"checkpoint {path} does not fit: {'; '.join(bad)}")
    sae = arrays.get("sae")
    return DirectionSet(
        **{f: jnp.asarray(arrays[f]) for f in _FIELDS if f in arrays},
        sae=SAEParams(**{k: jnp.asarray(v) for k, v in sae.items()}) if sae else None,
        metadata=meta["metadata"])


def load_train_state(path: str | Path) -> SAEState:
    """Restores the SAE training state saved with ``save(..., train_state=...)``.

    The state's structure is rebuilt from the stored config (``jax.eval_shape`` of
    `init_state`), so nothing needs to be passed; continue with ``train_sae(x, cfg, state=...)``.
    """
    path = Path(path).absolute()
    meta = read_meta(path)
    if "train" not in meta:
        raise UserError(f"checkpoint {path} holds no SAE training state")
    info = meta["train"]
    cfg_dict = dict(info["cfg"])
    cfg_dict["log10_density_range"] = tuple(cfg_dict["log10_density_range"])
    cfg = SAEConfig(**cfg_dict)
    like = jax.eval_shape(lambda x: init_state(cfg, x, info["total_steps"]),
                          jax.ShapeDtypeStruct((1, info["d"]), jnp.float32))
    leaves = _restore(path, train=ocp.args.StandardRestore())["train"]
    leaves = {k: np.asarray(v) for k, v in dict(leaves).items()}
    _verify(path, leaves, info["checksums"])
    want = jax.tree.leaves(like)
    got = [leaves[k] for k in sorted(leaves)]
    if [(w.shape, w.dtype) for w in want] != [(g.shape, g.dtype) for g in got]:
        raise UserError(f"checkpoint {path}: the stored SAE state does not fit its config")
    state = jax.tree.unflatten(jax.tree.structure(like), [jnp.asarray(g) for g in got])
    return state.replace(dead_after=info["dead_after"])
