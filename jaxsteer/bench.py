"""`jaxsteer bench`: gradients per second, memory, compile time, FLOPs and MFU; PCA and SAE timing.

``jaxsteer bench throughput`` times the collector's kernel (`jaxsteer.collect.make_kernel`, the
same program `jaxsteer collect` runs) on full-size architectures with random weights
(`jaxsteer.models.architectures`), differentiating all 77 token rows. Each run is
``config[:attention[:remat[:batch/batch...]]]`` over `jaxsteer.benchmarks.CONFIGS`, e.g.
``sd-turbo-1:cudnn:none:32/64``. With ``--torch`` the PyTorch + diffusers reference
(`jaxsteer.benchmarks.torch_reference`) runs first in a subprocess on the same GPU, and the table
ends with jaxsteer / PyTorch per configuration (best batch of each side).

Columns: grads/s (pairs per second, steady state), ms/call, peak GiB (XLA's buffer assignment
of the program: arguments + outputs + temporaries), compile s (lower + compile; ``cold`` when the
persistent cache missed), cached s (lower + load from the persistent cache after
``jax.clear_caches``), GFLOP/grad (model FLOPs: XLA's cost analysis of the same forward +
backward with plain XLA attention, no remat, one denoiser call, times the steps per gradient; the
FLOPs a rematerialised or cuDNN program really runs differ; the cost analysis of the compiled
GPU program is kept in the JSON as ``compiled_cost_flops_per_grad`` but it leaves out cuBLAS and
cuDNN calls: 30 GFLOP/grad for SD-Turbo against 1,702 from the unoptimised program), MFU (model
FLOP/s over ``--peak-tflops``).

``jaxsteer bench pca`` / ``sae`` call `jaxsteer.decompose.bench`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxsteer import records
from jaxsteer.benchmarks import text_table
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError, is_device_oom
from jaxsteer.shapes.groundtruth import GroundTruthConfig

WHATS = ("throughput", "profile", "pca", "sae", "survey", "groundtruth")
# Remat of the JAX side: ``step`` is the Collector's own (jax.checkpoint of each denoising step);
# the others are UNet-call policies (`jaxsteer.models.remat`).
REMATS = ("none", "step", "blocks", "dots", "dots_all", "matmuls", "full")
ATTENTIONS = ("diffusers", "xla", "cudnn", "auto")
COLUMNS = ("config", "attention", "remat", "batch", "grads/s", "ms/call", "peak GiB",
           "compile s", "cached s", "GFLOP/grad", "MFU %")


@dataclasses.dataclass(frozen=True)
class BenchRun:
    what: str = opt("throughput", "throughput | profile | pca | sae | survey | groundtruth",
                    positional=True)
    configs: tuple[str, ...] = opt(
        (), "runs, each config[:attention[:remat[:batch/batch...]]] (configs: sd-turbo-1, "
        "sd-turbo-4, sd15-20, sdxl-dmd2, sdxl-turbo-1, tiny-1, ...); default: the five "
        "full-size configs with their default batches")
    attention: str = opt("auto", "attention of runs that name none: diffusers | xla | cudnn | "
                         "auto (cudnn on NVIDIA GPUs in bf16, else xla)", choices=ATTENTIONS)
    remat: str = opt("default", "remat of runs that name none: default (the config's) | "
                     + " | ".join(REMATS))
    dtype: str = opt("bfloat16", "parameter and activation dtype: bfloat16 | float32")
    min_time_s: float = opt(3.0, "timed seconds per point (at least 3 calls)")
    cached_compile: bool = opt(True, "also time lower + compile from the persistent cache")
    model_flops: bool = opt(True, "count model FLOPs with XLA's cost analysis (one extra trace "
                            "per architecture)")
    peak_tflops: float = opt(989.0, "the chip's dense bf16 peak for MFU (H100 SXM: 989; "
                             "measured 8k matmul on this workplace's H100: ~798)")
    check_fp32: str = opt("", "config whose bf16 gradients are compared with float32 ones "
                          "(cosine per pair), '' to skip")
    torch: bool = opt(False, "run the PyTorch + diffusers reference first (needs torch, "
                      "diffusers and a GPU)")
    torch_json: str = opt("", "rows of an earlier PyTorch reference run (its --out JSON) to "
                          "compare with, instead of running it")
    torch_batches: tuple[int, ...] = opt((), "batch sizes of the PyTorch side (default: each "
                                         "config's)")
    budget_s: float = opt(0.0, "skip runs once this many seconds have passed (0: no limit); "
                          "results so far are always written")
    cache_dir: str = opt("", "persistent compilation cache folder (default: the CLI's)")
    seed: int = opt(0, "seed of weights, embeddings and latents")
    profile_calls: int = opt(3, "profile: traced calls per run (after one warm-up call)")
    pairs: int = opt(256, "survey: gradients per prompt")
    prompts: int = opt(4, "survey: timed prompts (after one warm-up prompt that compiles)")
    pool: int = opt(0, "survey: the survey's --pool (0 = pool-free, its default)")
    survey_remat: bool = opt(True, "survey: rematerialise each denoising step (the survey's "
                             "default)")
    n: int = opt(4096, "pca / sae: rows")
    m: int = opt(59136, "pca: columns")
    d: int = opt(2048, "sae: width")
    out: Path = opt(Path("runs/bench/bench.json"), "JSON of every row (groundtruth: see "
                    "--groundtruth.out)")
    groundtruth: GroundTruthConfig = opt(default_factory=GroundTruthConfig,
                                         help="groundtruth: the shapes-world benchmark")

    def __post_init__(self):
        if self.what not in WHATS:
            raise UserError(f"unknown benchmark {self.what!r}: use one of {', '.join(WHATS)}")
        if self.remat != "default" and self.remat not in REMATS:
            raise UserError(f"--remat must be default or one of {', '.join(REMATS)}")
        if self.dtype not in ("bfloat16", "float32"):
            raise UserError(f"--dtype must be bfloat16 or float32, got {self.dtype!r}")
        for spec in self.configs:
            parse_run(spec, self.attention, self.remat)


@dataclasses.dataclass(frozen=True)
class Job:
    config: str
    attention: str
    remat: str
    batches: tuple[int, ...]


def parse_run(spec: str, attention: str = "auto", remat: str = "default") -> Job:
    """``config[:attention[:remat[:b1/b2]]]`` -> Job (empty fields take the defaults)."""
    from jaxsteer.benchmarks import CONFIGS

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


def _flops(cost: Any) -> float | None:
    if cost is None:
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    value = cost.get("flops")
    return float(value) if value is not None and value >= 0 else None


def _gib(n: float | None) -> float | None:
    return None if n is None else n / 2**30


def _cache_entries(path: str | None) -> int:
    if not path or not os.path.isdir(path):
        return 0
    return sum(len(files) for _, _, files in os.walk(path))


class _Models:
    """Random weights per (architecture, dtype), drawn once and shared by every run."""

    def __init__(self, seed: int, mesh):
        self.seed, self.mesh, self.params, self.build_s = seed, mesh, {}, {}

    def bundle(self, arch: str, dtype: str, attention: str, policy: str):
        import dataclasses as dc

        import jax

        from jaxsteer import sharding
        from jaxsteer.models import architectures

        key = (arch, dtype)
        cached = self.params.get(key)
        t0 = time.perf_counter()
        bundle = architectures.build(arch, dtype=dtype, seed=self.seed, attention=attention,
                                     remat_policy=policy, params=cached)
        if cached is None:
            params = jax.block_until_ready(sharding.put_replicated(self.mesh, bundle.params))
            bundle = dc.replace(bundle, params=params)
            self.params[key] = params
            self.build_s[key] = time.perf_counter() - t0
        return bundle

    def drop_except(self, keep: set) -> None:
        for key in list(self.params):
            if key[0] not in keep:
                del self.params[key]


def _sampler(cfg, remat: str):
    from jaxsteer.sampling import SamplerConfig

    return SamplerConfig(steps=cfg.steps, scheduler=cfg.scheduler, timesteps=cfg.timesteps,
                         guidance=cfg.guidance, remat=remat == "step")


def _policy(remat: str) -> str:
    return "none" if remat == "step" else remat


def _collector(models: _Models, name: str, dtype: str, attention: str, remat: str, mesh):
    from jaxsteer.benchmarks import CONFIGS
    from jaxsteer.collect import Collector

    cfg = CONFIGS[name]
    bundle = models.bundle(cfg.arch, dtype, attention, _policy(remat))
    return Collector(bundle, _sampler(cfg, remat), mesh, pool=True, unroll=cfg.unroll)


def _inputs(collector, name: str, batch: int, seed: int):
    """(inputs, batch) of the kernel: random [77, D] embedding(s), all 77 rows, random A and B."""
    import jax
    import jax.numpy as jnp

    from jaxsteer import sharding
    from jaxsteer.benchmarks import CONFIGS
    from jaxsteer.models.architectures import random_cond

    cfg = CONFIGS[name]
    model = collector.bundle.model
    cond = random_cond(cfg.arch, seed)
    uncond = random_cond(cfg.arch, seed + 1) if collector.spec.use_cfg else None
    inputs = {"cond": cond, "uncond": uncond, "rows_r": np.arange(77, dtype=np.int32),
              "key": jax.random.key(seed), "sched": collector.sched,
              "guidance": jnp.float32(cfg.guidance)}
    n = sharding.padded_size(batch, collector.devices)
    rng = np.random.default_rng(seed)
    shape = (n, *model.latent_shape)
    host = {"idx_p": np.arange(n, dtype=np.int32),
            "a": rng.standard_normal(shape, dtype=np.float32),
            "b": rng.standard_normal(shape, dtype=np.float32)}
    return inputs, sharding.put_batch(collector.mesh, host)


@functools.cache
def model_flops_per_call(arch: str, guidance: float, dtype: str) -> float | None:
    """FLOPs of one pair's gradient through ONE denoiser call (CFG included): XLA's cost
    analysis of the lowered (unoptimised) forward + backward, plain XLA attention, no remat.

    Shapes only: no weights are allocated and nothing is compiled.
    """
    import jax

    from jaxsteer import sharding
    from jaxsteer.benchmarks import ThroughputConfig
    from jaxsteer.collect import KernelSpec, make_kernel
    from jaxsteer.models import architectures

    cfg = ThroughputConfig(arch, 1, "euler", "", guidance=guidance)
    bundle = architectures.build(arch, dtype=dtype, attention="xla", params={})
    params = {"unet": architectures.param_shapes(bundle.model.unet, bundle.model.unet.dtype)}
    # Lowered for the CPU: the GPU backend's cost analysis of a lowered program reports no
    # FLOPs (measured on the H100), and the count depends on shapes only.
    mesh = sharding.make_mesh(devices=jax.devices("cpu")[:1])
    spec = KernelSpec(bundle.model, pool=True, use_cfg=guidance > 1.0, remat=False)
    sched = _sampler(cfg, "none").schedule(bundle.model)
    inputs = {"cond": architectures.random_cond(arch), "rows_r": np.arange(77, dtype=np.int32),
              "uncond": architectures.random_cond(arch, 1) if guidance > 1.0 else None,
              "key": jax.random.key(0), "sched": sched, "guidance": np.float32(guidance)}
    shape = (1, *bundle.model.latent_shape)
    batch = {"idx_p": jax.ShapeDtypeStruct((1,), np.int32),
             "a": jax.ShapeDtypeStruct(shape, np.float32),
             "b": jax.ShapeDtypeStruct(shape, np.float32)}
    lowered = make_kernel(spec, mesh).lower(params, inputs, batch)
    return _flops(lowered.cost_analysis())


def _time_calls(fn, args, min_time_s: float) -> tuple[float, float, int, Any]:
    """(first call s, steady s per call, calls timed, last output)."""
    import jax

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


def bench_point(models: _Models, job: Job, batch: int, cfg_run: BenchRun, mesh,
                measure_cached: bool = True, log=print) -> dict:
    """Compiles and times one (config, attention, remat, batch)."""
    import jax

    from jaxsteer.benchmarks import CONFIGS

    cfg = CONFIGS[job.config]
    row: dict[str, Any] = {"side": "jax", "config": job.config, "attention": job.attention,
                           "remat": job.remat, "batch": batch, "dtype": cfg_run.dtype,
                           "denoiser_calls": cfg.denoiser_calls}
    collector = _collector(models, job.config, cfg_run.dtype, job.attention, job.remat, mesh)
    row["params_build_s"] = models.build_s.get((cfg.arch, cfg_run.dtype))
    params = collector.params
    inputs, placed = _inputs(collector, job.config, batch, cfg_run.seed)
    cache = jax.config.jax_compilation_cache_dir
    try:
        t0 = time.perf_counter()
        lowered = collector.kernel.lower(params, inputs, placed)
        row["lower_s"] = time.perf_counter() - t0
        before = _cache_entries(cache)
        t0 = time.perf_counter()
        compiled = lowered.compile()
        row["compile_s"] = row["lower_s"] + time.perf_counter() - t0
        row["cache_miss"] = _cache_entries(cache) > before if cache else None
        # XLA's cost analysis of the optimised program: on GPUs it leaves out library calls
        # (cuBLAS / cuDNN custom calls), so it undercounts; MFU uses model_flops_per_grad.
        compiled_flops = _flops(compiled.cost_analysis())
        row["compiled_cost_flops_per_grad"] = compiled_flops / batch if compiled_flops else None
        mem = compiled.memory_analysis()
        if mem is not None:
            row["temp_gib"] = _gib(mem.temp_size_in_bytes)
            row["args_gib"] = _gib(mem.argument_size_in_bytes)
            row["peak_gib"] = _gib(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                   + mem.output_size_in_bytes - mem.alias_size_in_bytes)
        first, step_s, iters, grads = _time_calls(compiled, (params, inputs, placed),
                                                  cfg_run.min_time_s)
        g = np.asarray(grads, np.float64)
        row.update(status="ok", first_call_s=first, step_s=step_s, iters=iters,
                   grads_per_s=batch / step_s, finite=bool(np.isfinite(g).all()),
                   grad_shape=list(g.shape), grad_rms=float(np.sqrt(np.mean(g ** 2))))
        del grads, g, compiled
        stats = jax.local_devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            row["process_peak_gib"] = _gib(stats["peak_bytes_in_use"])
        if cfg_run.cached_compile and measure_cached and cache:
            jax.clear_caches()
            t0 = time.perf_counter()
            collector.kernel.lower(params, inputs, placed).compile()
            row["compile_cached_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - one failed point must not lose the others
        row["status"] = ("oom" if is_device_oom(e)
                         else f"error: {type(e).__name__}: {str(e)[:400]}")
    if row.get("status") == "ok" and cfg_run.model_flops:
        try:
            per_call = model_flops_per_call(cfg.arch, cfg.guidance, cfg_run.dtype)
            if per_call:
                row["model_flops_per_grad"] = per_call * (cfg.steps if cfg.unroll else 1)
                row["model_tflops_per_s"] = row["model_flops_per_grad"] * row["grads_per_s"] / 1e12
                row["mfu"] = row["model_tflops_per_s"] / cfg_run.peak_tflops
        except Exception as e:  # noqa: BLE001
            row["model_flops_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    log(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}))
    return row


def check_fp32(models: _Models, name: str, attention: str, remat: str, mesh, seed: int,
               batch: int = 2) -> dict:
    """Cosine between bf16 and float32 ("highest" matmul precision) gradients of the same pairs."""
    import jax

    out = {}
    for dtype in ("bfloat16", "float32"):
        att = attention if dtype == "bfloat16" else "xla"
        collector = _collector(models, name, dtype, att, remat, mesh)
        inputs, placed = _inputs(collector, name, batch, seed)
        with jax.default_matmul_precision("highest" if dtype == "float32" else "default"):
            compiled = collector.kernel.lower(collector.params, inputs, placed).compile()
        out[dtype] = np.asarray(compiled(collector.params, inputs, placed), np.float64)
    a, b = out["bfloat16"].reshape(batch, -1), out["float32"].reshape(batch, -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rel = np.linalg.norm(a - b) / np.linalg.norm(b)
    return {"config": name, "attention": attention, "remat": remat, "batch": batch,
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "rel_err": float(rel), "finite": bool(np.isfinite(a).all() and np.isfinite(b).all())}


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """The throughput table (one line per JAX point; failed points show their status)."""
    lines = []
    for r in rows:
        if r.get("side") != "jax":
            continue
        ok = r.get("status") == "ok"
        compile_s = r.get("compile_s")
        cold = "" if r.get("cache_miss") in (None, True) else "*"
        flops = r.get("model_flops_per_grad")
        lines.append([r["config"], r["attention"], r["remat"], str(r["batch"]),
                      _fmt(r.get("grads_per_s")) if ok else r.get("status", "?")[:40],
                      _fmt(1e3 * r["step_s"]) if ok else "-", _fmt(r.get("peak_gib")),
                      (_fmt(compile_s) + cold) if compile_s is not None else "-",
                      _fmt(r.get("compile_cached_s")),
                      _fmt(flops / 1e9, 0) if flops else "-",
                      _fmt(100 * r["mfu"]) if r.get("mfu") is not None else "-"])
    return text_table(list(COLUMNS), lines, left=3)


def best_by_config(rows: list[dict], side: str) -> dict[str, dict]:
    best: dict[str, dict] = {}
    for r in rows:
        if r.get("side") != side or r.get("status") != "ok":
            continue
        if r["config"] not in best or r["grads_per_s"] > best[r["config"]]["grads_per_s"]:
            best[r["config"]] = r
    return best


def format_ratio(rows: list[dict]) -> str:
    jx, th = best_by_config(rows, "jax"), best_by_config(rows, "torch")
    lines = []
    for name in jx:
        j, t = jx[name], th.get(name)
        jax_cell = f"{j['grads_per_s']:.1f} (b{j['batch']}, {j['attention']}, {j['remat']})"
        lines.append([name, jax_cell,
                      f"{t['grads_per_s']:.1f} (b{t['batch']})" if t else "-",
                      f"{j['grads_per_s'] / t['grads_per_s']:.2f}" if t else "-"])
    return text_table(["config", "jaxsteer grads/s", "pytorch grads/s", "jaxsteer/pytorch"], lines,
                      left=3)


def _run_torch(cfg: BenchRun, names: list[str], out: Path, budget_s: float) -> list[dict]:
    cmd = [sys.executable, "-m", "jaxsteer.benchmarks.torch_reference", "--configs",
           ",".join(names), "--out", str(out), "--min-time-s", str(cfg.min_time_s)]
    if cfg.torch_batches:
        cmd += ["--batches", ",".join(map(str, cfg.torch_batches))]
    if budget_s:
        cmd += ["--budget-s", str(budget_s)]
    print("bench: PyTorch reference:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"), check=False)
    if not out.exists():
        return [{"side": "torch", "status": f"error: exit {proc.returncode}, no output"}]
    data = json.loads(out.read_text())
    return data["rows"]


def _write(path: Path, result: dict) -> None:
    records.atomic_write_text(path, json.dumps(result, indent=1, default=str))


def throughput(cfg: BenchRun) -> dict:
    import jax

    from jaxsteer import sharding
    from jaxsteer.benchmarks import CONFIGS, DEFAULT_CONFIGS

    start = time.perf_counter()
    if cfg.cache_dir:
        jax.config.update("jax_compilation_cache_dir", cfg.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jobs = [parse_run(s, cfg.attention, cfg.remat) for s in (cfg.configs or DEFAULT_CONFIGS)]
    result: dict[str, Any] = {"config": to_dict(cfg), "rows": [], "fp32_check": None,
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if cfg.torch:  # before JAX takes the GPU's memory
        names = list(dict.fromkeys(j.config for j in jobs))
        torch_out = cfg.out.with_name(cfg.out.stem + "_torch.json")
        result["rows"] += _run_torch(cfg, names, torch_out, cfg.budget_s / 3 if cfg.budget_s else 0)
    if cfg.torch_json:
        path = Path(cfg.torch_json)
        if not path.exists():
            raise UserError(f"--torch-json {path} does not exist")
        result["rows"] += json.loads(path.read_text())["rows"]
    dev = jax.devices()[0]
    result.update(device=str(getattr(dev, "device_kind", dev.platform)), backend=dev.platform,
                  jax=jax.__version__, devices=jax.device_count(), peak_tflops=cfg.peak_tflops)
    print(f"bench: {result['device']} x{jax.device_count()}, jax {jax.__version__}", flush=True)
    mesh = sharding.make_mesh()
    models = _Models(cfg.seed, mesh)
    if cfg.check_fp32:  # first: a correctness check must not lose to the time budget
        job = parse_run(cfg.check_fp32, cfg.attention, cfg.remat)
        try:
            result["fp32_check"] = check_fp32(models, job.config, job.attention, job.remat,
                                              mesh, cfg.seed)
        except Exception as e:  # noqa: BLE001
            result["fp32_check"] = {"status": f"error: {type(e).__name__}: {str(e)[:300]}"}
        print("bench: bf16 vs fp32:", json.dumps(result["fp32_check"]), flush=True)
        _write(cfg.out, result)
    remaining_archs = [CONFIGS[j.config].arch for j in jobs]
    for i, job in enumerate(jobs):
        models.drop_except(set(remaining_archs[i:]))
        for j, batch in enumerate(job.batches):
            if cfg.budget_s and time.perf_counter() - start > cfg.budget_s:
                result["rows"].append({"side": "jax", "config": job.config,
                                       "attention": job.attention, "remat": job.remat,
                                       "batch": batch, "status": "skipped (budget)"})
                continue
            row = bench_point(models, job, batch, cfg, mesh, measure_cached=j == 0)
            result["rows"].append(row)
            _write(cfg.out, result)
    result["seconds"] = time.perf_counter() - start
    _write(cfg.out, result)
    print(f"\nthroughput ({result['device']}; MFU against {cfg.peak_tflops:g} TFLOP/s bf16; "
          "* = compile served from the persistent cache)")
    print(format_table(result["rows"]))
    if any(r.get("side") == "torch" for r in result["rows"]):
        print("\nbest batch per side")
        print(format_ratio(result["rows"]))
    return {"out": str(cfg.out), "points": sum(r.get("side") == "jax" for r in result["rows"]),
            "best": {k: round(v["grads_per_s"], 2)
                     for k, v in best_by_config(result["rows"], "jax").items()},
            "seconds": round(result["seconds"], 1)}


def profile(cfg: BenchRun) -> dict:
    """Where the device time of each run's kernel goes (first batch of each run; default
    sd-turbo-1): a profiler trace per run under ``<out folder>/traces/``, summarised by kernel
    category (`jaxsteer.benchmarks.profile`), tables printed, summaries in ``--out``."""
    from jaxsteer import sharding
    from jaxsteer.benchmarks.profile import format_profile, summarize, trace_calls

    if cfg.profile_calls < 1:
        raise UserError(f"--profile-calls must be positive, got {cfg.profile_calls}")
    jobs = [parse_run(s, cfg.attention, cfg.remat) for s in (cfg.configs or ("sd-turbo-1",))]
    mesh = sharding.make_mesh()
    models = _Models(cfg.seed, mesh)
    result: dict[str, Any] = {"config": to_dict(cfg), "runs": []}
    for job in jobs:
        batch = job.batches[0]
        name = f"{job.config}-{job.attention}-{job.remat}-b{batch}"
        collector = _collector(models, job.config, cfg.dtype, job.attention, job.remat, mesh)
        inputs, placed = _inputs(collector, job.config, batch, cfg.seed)
        compiled = collector.kernel.lower(collector.params, inputs, placed).compile()
        path = trace_calls(compiled, (collector.params, inputs, placed),
                           cfg.out.parent / "traces" / name, calls=cfg.profile_calls)
        summary = summarize(path, cfg.profile_calls)
        summary.update(run=name, batch=batch, trace=str(path),
                       grads_per_s=batch / (summary["wall_ms_per_call"] / 1e3))
        result["runs"].append(summary)
        _write(cfg.out, result)
        print(format_profile(summary, f"{name}: {summary['grads_per_s']:.1f} grads/s in the "
                             "trace"), flush=True)
    return {"out": str(cfg.out), "runs": [r["run"] for r in result["runs"]]}


def survey(cfg: BenchRun) -> dict:
    """Prompts per hour of a survey (first run of --configs, default sd-turbo-1) and a projection
    to TPU slices (`jaxsteer.benchmarks.survey_throughput`)."""
    from jaxsteer.benchmarks.survey_throughput import bench_survey, format_survey

    job = parse_run(cfg.configs[0] if cfg.configs else "sd-turbo-1", cfg.attention, cfg.remat)
    res = bench_survey(job.config, pairs=cfg.pairs, prompts=cfg.prompts, batch=job.batches[0],
                       dtype=cfg.dtype, attention=job.attention, peak_tflops=cfg.peak_tflops,
                       pool=cfg.pool, remat=cfg.survey_remat, seed=cfg.seed,
                       model_flops=cfg.model_flops, out=cfg.out)
    print(format_survey(res))
    return {"out": str(cfg.out), "prompts_per_hour": round(res["prompts_per_hour"], 1),
            "compile_s": round(res["compile_s"], 1),
            "projection_hours": {k: round(v["hours"], 2) for k, v in res["projection"].items()}}


def run(cfg: BenchRun) -> dict:
    if cfg.what != "groundtruth":  # groundtruth writes to its own --groundtruth.out
        records.check_out(cfg.out, file=True)
    if cfg.what == "throughput":
        return throughput(cfg)
    if cfg.what == "survey":
        return survey(cfg)
    if cfg.what == "profile":
        return profile(cfg)
    if cfg.what == "groundtruth":
        from jaxsteer.shapes import groundtruth
        return groundtruth.run(cfg.groundtruth)
    from jaxsteer.decompose import bench as dbench  # another module's benchmarks, loaded late

    if cfg.what == "pca":
        res = dbench.bench_pca(n=cfg.n, m=cfg.m, seed=cfg.seed)
    else:
        res = dbench.bench_sae(n=cfg.n, d=cfg.d, seed=cfg.seed)
    _write(cfg.out, {"config": to_dict(cfg), "result": res})
    print(text_table(list(res), [[_fmt(v, 3) for v in res.values()]], left=3))
    return {"out": str(cfg.out), **res}
