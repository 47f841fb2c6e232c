"""Every sharding decision of jaxsteer, in one place: axis names, the mesh, and the specs.

No other module writes ``P(...)``. Parameters are replicated and the batch (of pairs or samples)
is split on the ``data`` axis; weights may instead be split over the ``model`` axis by the
path rules of `put_params` (size 1 by default: everything replicated).

The placement rule: a loaded model's weights live on JAX's default device, uncommitted
(`to_default_device`: the accelerator where there is one, so the text encoder runs there), and
everything a compiled program of a mesh is called with goes through `put_replicated` (weights,
text conditioning, schedules, keys) or `put_batch` (pairs, samples) first. Ahead-of-time
compiled programs (the collector's memory-fitted kernels) accept nothing else.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsteer.errors import UserError

DATA = "data"
MODEL = "model"


def make_mesh(data: int = -1, model: int = 1, devices: list | None = None) -> Mesh:
    """A (data, model) mesh over ``devices`` (default: this process's local devices): ``data``
    devices on the data axis (-1: all that the model axis leaves), ``model`` on the model axis
    (parameter sharding; 1 = replicate).

    Axis types are Auto: newer JAX leans to Explicit axes, which the unannotated diffusers linen
    code is not written for.
    """
    if model < 1 or (data < 1 and data != -1):
        raise UserError(f"mesh sizes must be positive (or data = -1), got {data}x{model}")
    devices = list(devices if devices is not None else jax.local_devices())
    data = len(devices) // model if data == -1 else data
    if data * model != len(devices):
        if data * model > len(devices):
            raise UserError(f"mesh {data}x{model} needs {data * model} devices, "
                            f"only {len(devices)} are available")
        devices = devices[: data * model]
    grid = np.asarray(devices, dtype=object).reshape(data, model)
    return Mesh(grid, (DATA, MODEL), axis_types=(AxisType.Auto, AxisType.Auto))


def local_mesh(devices: int = -1, model: int = 1) -> Mesh:
    """A mesh over the first ``devices`` local devices (-1: all), with a clear error: ``model``
    of them on the model axis (-1: all of them, for fully sharded parameters), the rest on
    the data axis."""
    local = jax.local_devices()
    if devices != -1 and not 1 <= devices <= len(local):
        raise UserError(f"--devices must be -1 or in [1, {len(local)}], got {devices}")
    chosen = local if devices == -1 else local[:devices]
    return make_mesh(model=len(chosen) if model == -1 else model, devices=chosen)


def to_default_device(tree):
    """Every array of ``tree`` on JAX's default device, uncommitted.

    diffusers' and transformers' Flax loaders commit weights to the host's CPU device; left
    there, every program they feed runs on the host, and an AOT-compiled kernel for a GPU mesh
    refuses them. Uncommitted arrays follow ``jax.default_device`` and move to a mesh freely.
    """
    return jax.device_put(jax.tree.map(np.asarray, tree))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``data``, the rest whole."""
    return NamedSharding(mesh, P(DATA))


def data_size(mesh: Mesh) -> int:
    return int(mesh.shape[DATA])


def put_batch(mesh: Mesh, tree):
    """Places host arrays with their leading axis split over the data axis."""
    return jax.device_put(tree, batch_sharding(mesh))


def put_replicated(mesh: Mesh, tree):
    return jax.device_put(tree, replicated(mesh))


def padded_size(n: int, multiple: int) -> int:
    """The batch size ``n`` rounded up to a multiple of the data-axis size."""
    return -(-n // multiple) * multiple


def pad_batch(x: np.ndarray, multiple: int) -> np.ndarray:
    """``x`` with its leading axis padded to a multiple of ``multiple`` (the data-axis size) by
    repeating its last item; callers keep the first ``len(x)`` results."""
    x = np.asarray(x)
    extra = padded_size(len(x), multiple) - len(x)
    return np.concatenate([x, np.repeat(x[-1:], extra, 0)]) if extra else x


def host_split(items: list, index: int | None = None, count: int | None = None) -> list:
    """This process's share of ``items`` for work that is parallel over hosts (surveys)."""
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
    return items[index::count]


# Parameter sharding (fully sharded data parallel over the ``model`` axis): rules over parameter
# paths ("transformer/transformer_blocks_0/attn/to_q/kernel") give a PartitionSpec; each device
# holds a slice of every large weight and XLA gathers it where a layer uses it. First match wins;
# a leaf with no matching rule, smaller than ``min_size`` elements, or whose sharded axis the
# model axis does not divide stays replicated. Linear kernels [in, out] are split on their output
# axis, 2-D embeddings on their vocabulary, conv kernels HWIO on their output channels: the same
# rules serve Flux, SDXL and SD.
PARAM_RULES: tuple[tuple[str, P], ...] = (
    (r"embedding$", P(MODEL, None)),                 # Embed [vocab, width]
    (r"kernel$", P(None, MODEL)),                    # Dense [in, out]
    (r"kernel$", P(None, None, None, MODEL)),        # Conv [h, w, in, out]
)
MIN_SHARDED_SIZE = 2 ** 16  # elements; smaller leaves (norms, biases, tiny kernels) replicate


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


PARAM_SHARDINGS = ("none", "fsdp")   # the collector's --param-sharding


def param_spec(name: str, shape: tuple[int, ...], model_size: int,
               rules: tuple[tuple[str, P], ...] = PARAM_RULES,
               min_size: int | None = None) -> P:
    """The PartitionSpec of one parameter leaf (``P()``: replicated). ``min_size`` defaults to
    ``MIN_SHARDED_SIZE``, read at call time (tests of tiny models lower it)."""
    min_size = MIN_SHARDED_SIZE if min_size is None else min_size
    if model_size <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return P()
    for pattern, spec in rules:
        if len(spec) != len(shape) or not re.search(pattern, name):
            continue
        if all(ax is None or shape[i] % model_size == 0 for i, ax in enumerate(spec)):
            return spec
    return P()


def param_specs(params, mesh: Mesh, rules: tuple[tuple[str, P], ...] = PARAM_RULES,
                min_size: int | None = None):
    """A tree of PartitionSpecs with the structure of ``params``."""
    size = int(mesh.shape[MODEL])
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: param_spec(_path_name(path), tuple(np.shape(leaf)), size, rules,
                                      min_size), params)


def put_params(mesh: Mesh, params, rules: tuple[tuple[str, P], ...] = PARAM_RULES,
               min_size: int | None = None):
    """``params`` on ``mesh``: large weights split over ``model`` by ``rules``, the rest
    replicated (with a model axis of size 1 this is `put_replicated`)."""
    return place_params(mesh, params, param_layout(params, mesh, "fsdp", rules, min_size))


@dataclasses.dataclass(frozen=True)
class ParamLayout:
    """Where each parameter leaf lives: the tree's structure and one PartitionSpec per leaf.

    Hashable (unlike a tree of shardings), so compiled kernels can be cached on it."""

    treedef: Any
    specs: tuple[P, ...]

    def shardings(self, mesh: Mesh):
        """The tree of NamedShardings on ``mesh`` (a jit's ``in_shardings`` for the params)."""
        return jax.tree.unflatten(self.treedef, [NamedSharding(mesh, s) for s in self.specs])


def param_layout(params, mesh: Mesh, mode: str = "fsdp",
                 rules: tuple[tuple[str, P], ...] = PARAM_RULES,
                 min_size: int | None = None) -> ParamLayout | None:
    """The layout of ``params`` on ``mesh`` for a --param-sharding mode: ``fsdp`` splits large
    leaves over the model axis by ``rules`` (`param_spec`); None where every leaf stays
    replicated (mode ``none``, a model axis of 1, nothing large enough), so that the kernels
    of all replicated Collectors are one cached program."""
    if mode not in PARAM_SHARDINGS:
        raise UserError(f"--param-sharding must be one of {', '.join(PARAM_SHARDINGS)}, "
                        f"got {mode!r}")
    if mode == "none":
        return None
    specs = tuple(jax.tree.leaves(param_specs(params, mesh, rules, min_size),
                                  is_leaf=lambda x: isinstance(x, P)))
    if all(s == P() for s in specs):
        return None
    return ParamLayout(jax.tree.structure(params), specs)


def place_params(mesh: Mesh, params, layout: ParamLayout | None = None):
    """``params`` on ``mesh`` as ``layout`` says (None: replicated)."""
    if layout is None:
        return put_replicated(mesh, params)
    return jax.device_put(params, layout.shardings(mesh))


def param_bytes_per_device(params) -> dict:
    """Bytes of ``params`` each device holds: ``{"total": logical bytes, "per_device": {device
    id: bytes}, "max": the largest}`` (replicated leaves count on every device).

    Leaves are placed arrays, or ``jax.ShapeDtypeStruct`` s carrying a sharding (a model too
    large to allocate here, counted from its layout)."""
    per: dict[int, int] = {}
    total = 0
    for leaf in jax.tree.leaves(params):
        itemsize = np.dtype(leaf.dtype).itemsize
        total += int(np.prod(leaf.shape, dtype=np.int64)) * itemsize
        if isinstance(leaf, jax.ShapeDtypeStruct):
            nbytes = int(np.prod(leaf.sharding.shard_shape(leaf.shape), dtype=np.int64)) * itemsize
            shards = [(d.id, nbytes) for d in leaf.sharding.device_set]
        else:
            shards = [(s.device.id, s.data.nbytes) for s in getattr(leaf, "addressable_shards", ())]
        for device, nbytes in shards:
            per[device] = per.get(device, 0) + nbytes
    return {"total": total, "per_device": per, "max": max(per.values(), default=0)}


def layout_shapes(shapes, mesh: Mesh, layout: ParamLayout | None):
    """``shapes`` (ShapeDtypeStructs) with the shardings of ``layout`` on ``mesh`` (None:
    replicated), for `param_bytes_per_device` without allocating anything."""
    shardings = (jax.tree.map(lambda _: replicated(mesh), shapes) if layout is None
                 else layout.shardings(mesh))
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        shapes, shardings)
