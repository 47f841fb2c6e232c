"""What every benchmark of the collector's kernel shares: run specs, random-weight models, the
kernel's inputs, model FLOPs, timing.

A run is ``config[:attention[:remat[:batch/batch...]]]`` over `jaxsteer.benchmarks.CONFIGS`,
e.g. ``sd-turbo-1:cudnn:none:32/64``; the kernel is `jaxsteer.collect.make_kernel` (the program
`jaxsteer collect` runs) on a full-size architecture with random weights
(`jaxsteer.models.architectures`), differentiating all 77 token rows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import records, sharding
from jaxsteer.benchmarks import CONFIGS, ThroughputConfig
from jaxsteer.collect import Collector
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.kernel import KernelInputs, KernelSpec, PairBatch, make_kernel
from jaxsteer.models import architectures
from jaxsteer.sampling import SamplerConfig

# Remat of the JAX side: ``step`` is the Collector's own (jax.checkpoint of each denoising step);
# the others are UNet-call policies (`jaxsteer.models.remat`).
REMATS = ("none", "step", "blocks", "dots", "dots_all", "matmuls", "full")
ATTENTIONS = ("diffusers", "xla", "cudnn", "auto")


@dataclasses.dataclass(frozen=True)
class KernelBench:
    """Flags of every kernel benchmark (throughput, profile, survey)."""

    configs: tuple[str, ...] = opt(
        (), "runs, each config[:attention[:remat[:batch/batch...]]] (configs: sd-turbo-1, "
        "sd-turbo-4, sd15-20, sdxl-dmd2, sdxl-turbo-1, tiny-1, ...); default: the benchmark's")
    attention: str = opt("auto", "attention of runs that name none: diffusers | xla | cudnn | "
                         "auto (cudnn on NVIDIA GPUs in bf16, else xla)", choices=ATTENTIONS)
    remat: str = opt("default", "remat of runs that name none: default (the config's) | "
                     + " | ".join(REMATS))
    dtype: str = opt("bfloat16", "parameter and activation dtype: bfloat16 | float32")
    seed: int = opt(0, "seed of weights, embeddings and latents")
    scan_layers: bool = opt(False, "run stacks of identical transformer blocks (SDXL) as one "
                            "lax.scan (faster compiles, slower calls; remat blocks always scans)")
    out: Path = opt(Path("runs/bench/bench.json"), "JSON of every row")

    def __post_init__(self):
        if self.remat != "default" and self.remat not in REMATS:
            raise UserError(f"--remat must be default or one of {', '.join(REMATS)}")
        if self.dtype not in ("bfloat16", "float32"):
            raise UserError(f"--dtype must be bfloat16 or float32, got {self.dtype!r}")
        for spec in self.configs:
            parse_run(spec, self.attention, self.remat)

    def jobs(self, default: tuple[str, ...]) -> list[Job]:
        return [parse_run(s, self.attention, self.remat) for s in (self.configs or default)]


@dataclasses.dataclass(frozen=True)
class Job:
    config: str
    attention: str
    remat: str
    batches: tuple[int, ...]


def parse_run(spec: str, attention: str = "auto", remat: str = "default") -> Job:
    """``config[:attention[:remat[:b1/b2]]]`` -> Job (empty fields take the defaults)."""
    parts = spec.strip().split(":")
    if parts[0] not in CONFIGS:
        raise UserError(f"unknown bench config {parts[0]!r}: use one of {', '.join(CONFIGS)}")
    if len(parts) > 4:
        raise UserError(f"bench run {spec!r}: at most config:attention:remat:batches")
    cfg = CONFIGS[parts[0]]
    parts += [""] * (4 - len(parts))
    att = parts[1] or attention
    rm = parts[2] or (cfg.remat if remat == "default" else remat)
    if att not in ATTENTIONS:
        raise UserError(f"bench run {spec!r}: attention must be one of {', '.join(ATTENTIONS)}")
    if rm not in REMATS:
        raise UserError(f"bench run {spec!r}: remat must be one of {', '.join(REMATS)}")
    try:
        batches = tuple(int(b) for b in parts[3].split("/") if b) or cfg.batches
    except ValueError:
        raise UserError(f"bench run {spec!r}: batches must be integers like 16/32") from None
    if any(b < 1 for b in batches):
        raise UserError(f"bench run {spec!r}: batches must be positive")
    return Job(parts[0], att, rm, batches)


def flops(cost: Any) -> float | None:
    """The FLOP count of an XLA cost analysis (a dict, or a list of one), None if unknown."""
    if cost is None:
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = cost.get("flops")
    return float(value) if value is not None and value >= 0 else None


def cache_entries(path: str | None) -> int:
    """Files under the persistent compilation cache folder ``path`` (0 if there is none)."""
    if not path or not os.path.isdir(path):
        return 0
    return sum(len(files) for _, _, files in os.walk(path))


def gib(n: float | None) -> float | None:
    return None if n is None else n / 2**30


def write_json(path: Path, result: dict) -> None:
    records.atomic_write_text(path, json.dumps(result, indent=1, default=str))


class Models:
    """Random weights per (architecture, dtype), drawn once and shared by every run."""

    def __init__(self, seed: int, mesh, scan_layers: bool = True):
        self.seed, self.mesh, self.params, self.build_s = seed, mesh, {}, {}
        self.scan_layers = scan_layers

    def bundle(self, arch: str, dtype: str, attention: str, policy: str):
        key = (arch, dtype)
        cached = self.params.get(key)
        t0 = time.perf_counter()
        bundle = architectures.build(arch, dtype=dtype, seed=self.seed, attention=attention,
                                     remat_policy=policy, params=cached,
                                     scan_layers=self.scan_layers)
        if cached is None:
            params = jax.block_until_ready(sharding.put_replicated(self.mesh, bundle.params))
            bundle = dataclasses.replace(bundle, params=params)
            self.params[key] = params
            self.build_s[key] = time.perf_counter() - t0
        return bundle

    def drop_except(self, keep: set) -> None:
        for key in list(self.params):
            if key[0] not in keep:
                del self.params[key]


def sampler(cfg, remat: str) -> SamplerConfig:
    """The sampler of a `ThroughputConfig` under a bench remat (``step``: per denoising step)."""
    return SamplerConfig(steps=cfg.steps, scheduler=cfg.scheduler, timesteps=cfg.timesteps,
                         guidance=cfg.guidance, remat=remat == "step")


def collector(models: Models, name: str, dtype: str, attention: str, remat: str,
              mesh) -> Collector:
    cfg = CONFIGS[name]
    policy = "none" if remat == "step" else remat
    bundle = models.bundle(cfg.arch, dtype, attention, policy)
    return Collector(bundle, sampler(cfg, remat), mesh, pool=True, unroll=cfg.unroll)


def kernel_inputs(coll: Collector, name: str, batch: int, seed: int):
    """(inputs, batch) of the kernel: random [77, D] embedding(s), all 77 rows, random A and B."""
    cfg = CONFIGS[name]
    model = coll.bundle.model
    cond = architectures.random_cond(cfg.arch, seed)
    uncond = architectures.random_cond(cfg.arch, seed + 1) if coll.spec.use_cfg else None
    inputs = KernelInputs(cond=cond, uncond=uncond,
                          rows_r=np.arange(model.max_tokens, dtype=np.int32),  # every row
                          key=jax.random.key(seed), sched=coll.sched,
                          guidance=jnp.float32(cfg.guidance))
    n = sharding.padded_size(batch, coll.devices)
    rng = np.random.default_rng(seed)
    shape = (n, *model.latent_shape)
    host = PairBatch(idx_p=np.arange(n, dtype=np.int32),
                     a=rng.standard_normal(shape, dtype=np.float32),
                     b=rng.standard_normal(shape, dtype=np.float32))
    return inputs, sharding.put_batch(coll.mesh, host)


@functools.cache
def model_flops_per_call(arch: str, guidance: float, dtype: str) -> float | None:
    """FLOPs of one pair's gradient through ONE denoiser call (CFG included): XLA's cost
    analysis of the lowered (unoptimised) forward + backward, plain XLA attention, no remat,
    transformer stacks unrolled: the cost analysis counts a scan's body once, not per layer.

    Shapes only: no weights are allocated and nothing is compiled.
    """
    return lowered_flops(arch, guidance, dtype, scan_layers=False)


def lowered_flops(arch: str, guidance: float, dtype: str, scan_layers: bool) -> float | None:
    """XLA's FLOP count of one pair's lowered gradient kernel (see `model_flops_per_call`)."""
    cfg = ThroughputConfig(arch, 1, "euler", "", guidance=guidance)
    bundle = architectures.build(arch, dtype=dtype, attention="xla", params={},
                                 scan_layers=scan_layers)
    params = architectures.denoiser_shapes(bundle)
    # Lowered for the CPU: the GPU backend's cost analysis of a lowered program reports no
    # FLOPs (measured on the H100), and the count depends on shapes only.
    mesh = sharding.make_mesh(devices=jax.devices("cpu")[:1])
    spec = KernelSpec(bundle.model, pool=True, use_cfg=guidance > 1.0, remat=False)
    sched = sampler(cfg, "none").schedule(bundle.model)
    inputs = KernelInputs(
        cond=architectures.random_cond(arch),
        rows_r=np.arange(bundle.model.max_tokens, dtype=np.int32),
        uncond=architectures.random_cond(arch, 1) if guidance > 1.0 else None,
        key=jax.random.key(0), sched=sched, guidance=np.float32(guidance))
    shape = (1, *bundle.model.latent_shape)
    batch = PairBatch(idx_p=jax.ShapeDtypeStruct((1,), np.int32),
                      a=jax.ShapeDtypeStruct(shape, np.float32),
                      b=jax.ShapeDtypeStruct(shape, np.float32))
    lowered = make_kernel(spec, mesh).lower(params, inputs, batch)
    return flops(lowered.cost_analysis())


def time_calls(fn, args, min_time_s: float) -> tuple[float, float, int, Any]:
    """(first call s, steady s per call, calls timed, last output)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    one = time.perf_counter() - t0
    iters = max(3, min(200, int(min_time_s / max(one, 1e-4))))
    t0 = time.perf_counter()
    for _ in range(iters):
        out = fn(*args)
    jax.block_until_ready(out)
    return first, (time.perf_counter() - t0) / iters, iters, out
