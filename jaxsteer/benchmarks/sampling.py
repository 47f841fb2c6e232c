"""`jaxsteer bench sample`: images per second of `jaxsteer sample`, against PyTorch.

Each point is one configuration (`jaxsteer.benchmarks.SAMPLE_CONFIGS`: SD-Turbo 1 step 512²,
SDXL-DMD2 4 LCM steps 1024²) at one batch size, on a full-size architecture with random weights
(`jaxsteer.models.architectures`), guidance 0, a random prompt embedding. Two numbers per point:

- ``images/s``: steady state of the compiled generator `jaxsteer.sample.make_generator` (the
  program `jaxsteer sample` runs: noise, every denoising step, latents out);
- ``pool images/s``: end to end through `jaxsteer.sample.fill_pool` into a temporary pool
  (``--pool-shards`` shards of one batch each: generation, copy to the host and checksummed shard
  writes, the writes overlapped with the next shard's generation), and from it the projected
  minutes for a 10,000-image pool (a projection from the measured rate, not a run of 10,000).

With ``--torch`` the PyTorch side (`jaxsteer.benchmarks.sampling_reference`: diffusers' UNet and
scheduler in the loop a diffusers pipeline runs with ``output_type="latent"``, eager and
``torch.compile``) runs first in a subprocess on the same GPU; the table ends with jaxsteer over
the best PyTorch mode per configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import records, sharding
from jaxsteer.benchmarks import DEFAULT_SAMPLE_CONFIGS, SAMPLE_CONFIGS, text_table
from jaxsteer.benchmarks.common import gib, time_calls, write_json
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError, is_device_oom
from jaxsteer.models import architectures, resolve_attention
from jaxsteer.models.architectures import random_cond
from jaxsteer.sample import fill_pool, make_generator
from jaxsteer.sampling import SamplerConfig
from jaxsteer.store import ShardStore

POOL_IMAGES = 10_000   # the authors' pool size: the projected minutes column


@dataclasses.dataclass(frozen=True)
class SampleBench:
    """`jaxsteer bench sample` (default runs: sd-turbo, sdxl-dmd2)."""

    configs: tuple[str, ...] = opt((), "runs, each config[:batch/batch...] (configs: sd-turbo, "
                                   "sdxl-dmd2, tiny); default: sd-turbo, sdxl-dmd2")
    attention: str = opt("auto", "UNet attention: auto (cuDNN on NVIDIA GPUs in bf16, else xla) "
                         "| xla | cudnn | diffusers", choices=("auto", "xla", "cudnn", "diffusers"))
    dtype: str = opt("bfloat16", "parameter and activation dtype: bfloat16 | float32",
                     choices=("bfloat16", "float32"))
    min_time_s: float = opt(3.0, "timed seconds per point (at least 3 calls)")
    pool_shards: int = opt(4, "shards of one batch written through the pool writer per point "
                           "(0: skip the end-to-end number)")
    torch: bool = opt(False, "run the PyTorch + diffusers denoise loop first (needs torch, "
                      "diffusers and a GPU)")
    torch_variants: str = opt("eager,compile", "variants of the PyTorch side: eager and/or "
                              "compile")
    torch_json: str = opt("", "rows of an earlier PyTorch run (its JSON) to compare with")
    budget_s: float = opt(0.0, "skip points once this many seconds have passed (0: no limit); "
                          "results so far are always written")
    seed: int = opt(0, "seed of weights, embeddings and noise")
    out: Path = opt(Path("runs/bench/sample.json"), "JSON of every row")

    def __post_init__(self):
        for spec in self.configs:
            parse_run(spec)
        if self.pool_shards < 0:
            raise UserError(f"--pool-shards must be >= 0, got {self.pool_shards}")

    def jobs(self) -> list[tuple[str, tuple[int, ...]]]:
        return [parse_run(s) for s in (self.configs or DEFAULT_SAMPLE_CONFIGS)]


def parse_run(spec: str) -> tuple[str, tuple[int, ...]]:
    """``config[:b1/b2]`` -> (config, batches)."""
    name, _, rest = spec.strip().partition(":")
    if name not in SAMPLE_CONFIGS:
        raise UserError(f"unknown sample bench config {name!r}: use one of "
                        f"{', '.join(SAMPLE_CONFIGS)}")
    try:
        batches = tuple(int(b) for b in rest.split("/") if b) or SAMPLE_CONFIGS[name].batches
    except ValueError:
        raise UserError(f"sample bench run {spec!r}: batches must be integers like 8/16") from None
    if any(b < 1 for b in batches):
        raise UserError(f"sample bench run {spec!r}: batches must be positive")
    return name, batches


def sampler_of(name: str) -> SamplerConfig:
    sc = SAMPLE_CONFIGS[name]
    return SamplerConfig(steps=sc.steps, scheduler=sc.scheduler, timesteps=sc.timesteps,
                         guidance=0.0, remat=False)


def _pool_rate(compiled, params, cond, key, mesh, batch: int, shards: int) -> float:
    """Images per second of `fill_pool` writing ``shards`` shards into a temporary pool."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ShardStore.open(Path(tmp) / "pool", "pool", {"bench": True}, {}, batch,
                                batch * shards)
        with store.writing():
            t0 = time.perf_counter()
            made = fill_pool(store, compiled, params, cond, None, key, mesh, show=False)
            return made / (time.perf_counter() - t0)


def bench_point(bundle, name: str, batch: int, cfg: SampleBench, mesh, params) -> dict:
    """Compiles and times one (config, batch) of the JAX side."""
    sc = SAMPLE_CONFIGS[name]
    row: dict[str, Any] = {"side": "jax", "config": name,
                           "mode": getattr(bundle.model, "attention", "-"),
                           "batch": batch, "steps": sc.steps, "dtype": cfg.dtype}
    try:
        gen = make_generator(bundle.model, sampler_of(name), mesh)
        cond = sharding.put_replicated(mesh, random_cond(sc.arch, cfg.seed))
        n = sharding.padded_size(batch, sharding.data_size(mesh))
        key = jax.random.key(cfg.seed)
        keys = sharding.put_batch(mesh, jax.vmap(jax.random.fold_in, (None, 0))(
            key, jnp.arange(n)))
        t0 = time.perf_counter()
        compiled = gen.lower(params, cond, None, keys).compile()
        row["compile_s"] = time.perf_counter() - t0
        mem = compiled.memory_analysis()
        if mem is not None:
            row["peak_gib"] = gib(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                  + mem.output_size_in_bytes - mem.alias_size_in_bytes)
        first, step_s, iters, out = time_calls(compiled, (params, cond, None, keys),
                                               cfg.min_time_s)
        x = np.asarray(out, np.float32)
        row.update(status="ok", first_call_s=first, step_s=step_s, iters=iters,
                   images_per_s=batch / step_s, finite=bool(np.isfinite(x).all()),
                   latent_shape=list(x.shape[1:]), latent_std=float(x.std()))
        if cfg.pool_shards:
            rate = _pool_rate(compiled, params, cond, key, mesh, n, cfg.pool_shards)
            row.update(pool_images_per_s=rate, pool_minutes_10k=POOL_IMAGES / rate / 60)
    except Exception as e:  # noqa: BLE001 - one failed point must not lose the others
        row["status"] = ("oom" if is_device_oom(e)
                         else f"error: {type(e).__name__}: {str(e)[:400]}")
    print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                      for k, v in row.items()}), flush=True)
    return row


def _run_torch(cfg: SampleBench, names: list[str], out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "jaxsteer.benchmarks.sampling_reference", "--configs",
           ",".join(names), "--variants", cfg.torch_variants, "--min-time-s", str(cfg.min_time_s),
           "--out", str(out)]
    batches = {n: "/".join(map(str, b)) for n, b in cfg.jobs()}
    cmd += ["--batches", ",".join(f"{n}:{b}" for n, b in batches.items())]
    if cfg.budget_s:
        cmd += ["--budget-s", str(cfg.budget_s / 2)]
    print("bench sample: PyTorch reference:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"), check=False)
    if not out.exists():
        return [{"side": "torch", "status": f"error: exit {proc.returncode}, no output"}]
    return json.loads(out.read_text())["rows"]


def _cell(v: Any, digits: int = 1) -> str:
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def format_table(rows: list[dict]) -> str:
    head = ["config", "side", "mode", "batch", "images/s", "ms/call", "compile s",
            "pool images/s", "10k pool min", "peak GiB"]
    lines = []
    for r in rows:
        if "config" not in r:
            continue
        ok = r.get("status") == "ok"
        lines.append([r["config"], r.get("side", "?"), str(r.get("mode", "-")),
                      str(r.get("batch", "-")),
                      _cell(r.get("images_per_s")) if ok else str(r.get("status", "?"))[:40],
                      _cell(1e3 * r["step_s"]) if ok else "-",
                      _cell(r.get("compile_s", r.get("first_call_s"))),
                      _cell(r.get("pool_images_per_s")), _cell(r.get("pool_minutes_10k")),
                      _cell(r.get("peak_gib")),])
    return text_table(head, lines, left=3)


def best(rows: list[dict], side: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        if r.get("side") == side and r.get("status") == "ok":
            if r["config"] not in out or r["images_per_s"] > out[r["config"]]["images_per_s"]:
                out[r["config"]] = r
    return out


def format_ratio(rows: list[dict]) -> str:
    jx, th = best(rows, "jax"), best(rows, "torch")
    lines = []
    for name, j in jx.items():
        t = th.get(name)
        lines.append([name, f"{j['images_per_s']:.1f} (b{j['batch']})",
                      f"{t['images_per_s']:.1f} (b{t['batch']}, {t['mode']})" if t else "-",
                      f"{j['images_per_s'] / t['images_per_s']:.2f}" if t else "-"])
    return text_table(["config", "jaxsteer images/s", "best pytorch images/s",
                       "jaxsteer/pytorch"], lines, left=3)


def run(cfg: SampleBench) -> dict:
    records.check_out(cfg.out, file=True)
    start = time.perf_counter()
    jobs = cfg.jobs()
    result: dict[str, Any] = {"config": to_dict(cfg), "rows": [],
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if cfg.torch:   # before JAX takes the GPU's memory
        result["rows"] += _run_torch(cfg, [n for n, _ in jobs],
                                     cfg.out.with_name(cfg.out.stem + "_torch.json"))
    if cfg.torch_json:
        path = Path(cfg.torch_json)
        if not path.exists():
            raise UserError(f"--torch-json {path} does not exist")
        result["rows"] += json.loads(path.read_text())["rows"]
    dev = jax.devices()[0]
    result.update(device=str(getattr(dev, "device_kind", dev.platform)), jax=jax.__version__,
                  devices=jax.device_count())
    mesh = sharding.make_mesh()
    attention = resolve_attention(cfg.attention, cfg.dtype)
    for name, batches in jobs:
        arch = SAMPLE_CONFIGS[name].arch
        bundle = architectures.build(arch, dtype=cfg.dtype, seed=cfg.seed, attention=attention)
        params = jax.block_until_ready(sharding.put_replicated(mesh, bundle.params))
        for batch in batches:
            if cfg.budget_s and time.perf_counter() - start > cfg.budget_s:
                result["rows"].append({"side": "jax", "config": name, "batch": batch,
                                       "status": "skipped (budget)"})
                continue
            result["rows"].append(bench_point(bundle, name, batch, cfg, mesh, params))
            write_json(cfg.out, result)
        del bundle, params
    result["seconds"] = time.perf_counter() - start
    write_json(cfg.out, result)
    print(f"\nsampling ({result['device']}; images/s: one compiled call, steady state; pool: "
          f"end to end into a pool, writes overlapped; 10k pool min: projected)")
    print(format_table(result["rows"]))
    if any(r.get("side") == "torch" for r in result["rows"]):
        print("\nbest per side")
        print(format_ratio(result["rows"]))
    return {"out": str(cfg.out), "best": {k: round(v["images_per_s"], 2)
                                          for k, v in best(result["rows"], "jax").items()},
            "seconds": round(result["seconds"], 1)}
