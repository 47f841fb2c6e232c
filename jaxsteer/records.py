"""All small-file persistence: atomic writes (temporary name, then rename), JSON, array shards.

A reader never sees a half-written file: every write goes to a hidden temporary file in the same
folder, is flushed to disk, and is renamed over the final name (atomic on POSIX filesystems).
Array shards are safetensors files: no pickle, readable from numpy, torch or JAX.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` holds either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                metadata: dict[str, str] | None = None) -> None:
    """Saves named arrays as one safetensors file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    return load_file(str(path))


def clean_temporaries(folder: str | os.PathLike) -> None:
    """Removes temporary files a killed writer left behind (they are never valid output)."""
    for p in Path(folder).glob(".*.tmp"):
        p.unlink(missing_ok=True)
