"""Training states of the small trainers (train-shapes, train-scenes, distill-shapes): a
pytree of arrays (parameters, optimiser state, step) as one msgpack file, written atomically.

msgpack (flax.serialization) rather than an Orbax folder (`jaxsteer.checkpoint`, for direction
sets): these states are megabytes, each run keeps one, and a single file replaced by rename is
never seen half-written. The template gives the tree's structure back on reading (no pickle:
msgpack holds only arrays and numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import flax.serialization
import jax

from jaxsteer.records import atomic_write_bytes

T = TypeVar("T")


def save_state(path: Path, state: Any) -> None:
    """Writes ``state`` (on any device) to ``path``: a temporary file, then a rename."""
    atomic_write_bytes(path, flax.serialization.to_bytes(jax.device_get(state)))


def load_state(path: Path, template: T) -> T:
    """The state in ``path``, shaped like ``template`` and on the default device."""
    return jax.device_put(flax.serialization.from_bytes(template, Path(path).read_bytes()))
