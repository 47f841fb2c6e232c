"""All small-file persistence: atomic writes (temporary name, then rename), JSON, array shards.

A reader never sees a half-written file: every write goes to a hidden temporary file in the same
folder, is flushed to disk, and is renamed over the final name (atomic on POSIX filesystems).
Array shards are safetensors files: no pickle, readable from numpy, torch or JAX. Files get the
mode an ordinary ``open`` would give (0666 less the umask): results on a shared file system stay
readable to colleagues, although ``mkstemp`` creates 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load, load_file, save

from jaxsteer.errors import UserError


def umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary(path: Path) -> tuple[int, str]:
    """A hidden temporary file beside ``path`` with the mode ``open`` would give it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~umask())
    return fd, tmp


def check_out(path: str | os.PathLike, flag: str = "--out", file: bool = False) -> Path:
    """Checks before any work that ``path`` can become an output folder (or, with ``file``, an
    output file), so a bad --out costs one line, not a run: no file where a folder goes, no
    folder where the file goes, and a writable place to create it."""
    path = Path(path)
    if path.exists() and path.is_dir() == file:
        kind, want = ("a folder", "a file") if file else ("a file", "a folder")
        raise UserError(f"{flag} {path} is {kind}, not {want}: choose another {flag}")
    existing = path if path.exists() else next(p for p in path.parents if p.exists())
    if existing != path and not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder: "
                        f"choose another {flag}")
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise UserError(f"{flag} {path}: {existing} is not writable (read-only file system or "
                        f"no permission): choose another {flag}")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` holds either the old or the new content."""
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def array_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Named arrays as the bytes of one safetensors file."""
    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)


def arrays_from_bytes(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of safetensors bytes; a damaged file raises (SafetensorError, ValueError)."""
    return load(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                metadata: dict[str, str] | None = None) -> str:
    """Saves named arrays as one safetensors file, atomically; returns its sha256."""
    data = array_bytes(arrays, metadata)
    atomic_write_bytes(path, data)
    return sha256(data)


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    return load_file(str(path))


def publish_folder(tmp: Path, dest: Path) -> Path:
    """Replaces ``dest`` by the finished folder ``tmp``, its files readable whatever the umask (a
    shipped asset); a reader never finds ``dest`` half-written."""
    for path in tmp.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def clean_temporaries(folder: str | os.PathLike) -> None:
    """Removes temporary files a killed writer left behind (they are never valid output)."""
    for p in Path(folder).glob(".*.tmp"):
        p.unlink(missing_ok=True)


def read_records(path: Path) -> list[dict]:
    """Complete records of a part file; a torn last line (killed mid-write) is dropped."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 2:
                raise UserError(f"{path} line {i + 1} is corrupted (not the last line)") from None
    return out


def append_line(path: Path, obj: dict) -> None:
    """Appends one JSON line and fsyncs it: a record is on disk whole before it counts."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())
