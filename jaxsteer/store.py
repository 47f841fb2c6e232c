"""Resumable sharded stores on disk: the sample pool and the gradient store.

A store is a folder with ``manifest.json`` (what was run: identity fields that must match to
resume, plus metadata) and ``shards/NNNNNN.safetensors``, one file per fixed-size block of items.
Shard ``i`` holds items ``[i * shard_size, (i + 1) * shard_size)`` and is written atomically, so a
shard file either exists whole or not at all: a killed run resumes by skipping existing shards,
with no duplicates and no gaps. Every item's content depends only on the seed and its index.

The manifest records each shard's sha256 (``checksums``), written before the shard itself: a
shard on disk always has its checksum, so a damaged one (truncated, bit-flipped) is made again
on resume and refused on read. A shard without a checksum comes from a store written before
checksums existed: it is read unverified, with a warning.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from jaxsteer import records, runlock
from jaxsteer.errors import UserError

FORMAT = 1


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("jaxsteer", "jax", "jaxlib", "flax", "diffusers", "transformers", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


class ShardStore:
    """One store folder. Create with `ShardStore.open`; nothing is written until
    `commit_manifest`."""

    def __init__(self, folder: Path, manifest: dict):
        self.folder = Path(folder)
        self.manifest = manifest

    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    @property
    def total(self) -> int:
        return int(self.manifest["total"])

    @property
    def num_shards(self) -> int:
        return -(-self.total // self.shard_size)

    @classmethod
    def open(cls, folder: str | Path, kind: str, identity: dict, meta: dict, shard_size: int,
             total: int) -> ShardStore:
        """Opens ``folder`` for a run, checking that any run already there is the same run.

        Raises a `UserError` naming each field that differs; writes nothing.
        """
        folder = Path(folder)
        manifest = {"format": FORMAT, "kind": kind, "identity": identity, "shard_size": shard_size,
                    "total": total, "meta": meta, "versions": versions()}
        path = folder / "manifest.json"
        if path.exists():
            old = read_manifest(folder)
            if old.get("kind") != kind:
                raise UserError(f"{folder} holds a {old.get('kind')!r} store, not a {kind!r} "
                                "one: choose another --out")
            diff = [f"{k}: {old['identity'].get(k)!r} there, {v!r} now"
                    for k, v in identity.items() if old["identity"].get(k) != v]
            if old["shard_size"] != shard_size:
                diff.append(f"batch: {old['shard_size']} there, {shard_size} now")
            if diff:
                raise UserError(f"{folder} holds a different run ({'; '.join(diff)}); "
                                "choose another --out or repeat the same settings to resume")
            manifest["created"] = old.get("created")
            manifest["checksums"] = old.get("checksums", {})
        elif folder.exists() and any(not runlock.is_lock_file(p) for p in folder.iterdir()):
            raise UserError(f"{folder} exists, is not empty and holds no jaxsteer run: "
                            "choose another --out")
        return cls(folder, manifest)

    @contextlib.contextmanager
    def writing(self) -> Iterator[ShardStore]:
        """Holds the folder's one-writer lock (`jaxsteer.runlock`) for the block, with the
        manifest re-read and committed under it: another writer may have written meanwhile."""
        m = self.manifest
        with runlock.hold(self.folder):
            self.manifest = ShardStore.open(self.folder, m["kind"], m["identity"], m["meta"],
                                            self.shard_size, self.total).manifest
            self.commit_manifest()
            yield self

    def commit_manifest(self) -> None:
        """Creates the folder and writes the manifest (first write of a run)."""
        self.manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.manifest.setdefault("checksums", {})
        (self.folder / "shards").mkdir(parents=True, exist_ok=True)
        records.clean_temporaries(self.folder / "shards")
        self._write_manifest()

    def _write_manifest(self) -> None:
        self.manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        records.write_json(self.folder / "manifest.json", self.manifest)

    def checksum(self, i: int) -> str | None:
        """The recorded sha256 of shard ``i``; None for a shard of a pre-checksum store."""
        return self.manifest.get("checksums", {}).get(str(i))

    def shard_path(self, i: int) -> Path:
        return self.folder / "shards" / f"{i:06d}.safetensors"

    def shard_range(self, i: int) -> range:
        return range(i * self.shard_size, min((i + 1) * self.shard_size, self.total))

    def present(self) -> set[int]:
        """Shards with a file on disk (whole, since writes are atomic; maybe damaged since)."""
        folder = self.folder / "shards"
        if not folder.is_dir():
            return set()
        return {int(p.stem) for p in folder.glob("[0-9]*.safetensors") if p.stem.isdigit()}

    def damage(self, i: int, data: bytes) -> str | None:
        """Why shard ``i``'s bytes are not what was written, or None if they are."""
        want = self.checksum(i)
        if want is not None:
            if records.sha256(data) == want:
                return None
            return "its sha256 does not match the manifest"
        try:  # a pre-checksum shard: the best check left is that it parses
            records.arrays_from_bytes(data)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            return f"it does not parse ({type(e).__name__})"
        return None

    def done(self) -> set[int]:
        """Shards present and intact; a damaged one is left to be made again (with a note)."""
        done = set()
        for i in sorted(self.present()):
            why = self.damage(i, self.shard_path(i).read_bytes())
            if why is None:
                done.add(i)
            else:
                print(f"jaxsteer: {self.shard_path(i)} is damaged ({why}): making it again",
                      file=sys.stderr)
        return done

    def todo(self) -> list[int]:
        done = self.done()
        return [i for i in range(self.num_shards) if i not in done]

    def write_shard(self, i: int, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.shard_range(i))
        for name, a in arrays.items():
            if a.shape[0] != n:
                raise ValueError(f"shard {i} array {name} has {a.shape[0]} rows, expected {n}")
        data = records.array_bytes(arrays)
        # Checksum first: a kill between the two writes leaves a checksum without a shard (made
        # again on resume), never a shard that no checksum vouches for.
        self.manifest.setdefault("checksums", {})[str(i)] = records.sha256(data)
        self._write_manifest()
        records.atomic_write_bytes(self.shard_path(i), data)

    def read(self, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Concatenates every finished shard in order; the store must be complete and intact."""
        missing = [i for i in range(self.num_shards) if i not in self.present()]
        if missing:
            raise UserError(f"{self.folder} is incomplete: {len(missing)} of {self.num_shards} "
                            "shards missing; rerun the same command to finish it")
        parts, unverified = [], 0
        for i in range(self.num_shards):
            path = self.shard_path(i)
            data = path.read_bytes()
            why = self.damage(i, data)
            if why is not None:
                raise UserError(f"{path} is damaged ({why}): rerun the command that wrote "
                                f"{self.folder} to make it again")
            unverified += self.checksum(i) is None
            parts.append(records.arrays_from_bytes(data))
        if unverified:
            print(f"jaxsteer: warning: {unverified} shard(s) of {self.folder} carry no checksum "
                  "(written by an older jaxsteer): read unverified", file=sys.stderr)
        names = names or tuple(parts[0])
        return {k: np.concatenate([p[k] for p in parts]) for k in names}


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise UserError(f"{folder} is not a jaxsteer run folder (no manifest.json)")
    try:
        manifest = records.read_json(path)
    except ValueError:
        raise UserError(f"{path} is corrupted (not valid JSON)") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path} has store format {manifest.get('format')}, this jaxsteer "
                        f"reads format {FORMAT}")
    return manifest


def open_existing(folder: str | Path, kind: str) -> ShardStore:
    manifest = read_manifest(folder)
    if manifest.get("kind") != kind:
        raise UserError(f"{folder} holds a {manifest.get('kind')!r} store, expected {kind!r}")
    return ShardStore(Path(folder), manifest)


def read_gradients(run_dir: str | Path) -> tuple[np.ndarray, dict]:
    """Gradients [N, R, D] float32 of a finished collect run, and its manifest (flattened:
    identity and meta fields at the top level, e.g. "model", "prompt", "token", "token_rows",
    "embed_dim"; "pairs" [N, 2] holds the (A, B) pool indices, or seeds for pool-free runs)."""
    store = open_existing(run_dir, "gradients")
    data = store.read(("grads", "pairs"))
    flat = dict(store.manifest) | store.manifest["identity"] | store.manifest["meta"]
    flat["pairs"] = data["pairs"]
    return data["grads"], flat


def write_test_store(run_dir: str | Path, grads: np.ndarray, manifest: dict) -> None:
    """Writes a finished gradient store from an array (for tests of downstream code)."""
    grads = np.asarray(grads, np.float32)
    if grads.ndim == 2:
        grads = grads[:, None]
    identity = {"model": "test", "prompt": "a test", "token": "test", "token_rows": [1],
                "embed_dim": grads.shape[-1]} | manifest
    store = ShardStore.open(run_dir, "gradients", identity, {}, shard_size=len(grads),
                            total=len(grads))
    store.commit_manifest()
    pairs = np.stack([np.arange(len(grads)), np.arange(len(grads)) + 1], 1)
    store.write_shard(0, {"grads": grads, "pairs": pairs})
