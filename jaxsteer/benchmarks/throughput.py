"""`jaxsteer bench throughput`: gradients per second, memory, compile time, FLOPs and MFU.

``jaxsteer bench throughput`` times the collector's kernel (`jaxsteer.collect.make_kernel`, the
same program `jaxsteer collect` runs) on full-size architectures with random weights
(`jaxsteer.models.architectures`), differentiating all 77 token rows. Each run is
``config[:attention[:remat[:batch/batch...]]]`` (`jaxsteer.benchmarks.common`). With ``--torch``
the PyTorch + diffusers reference (`jaxsteer.benchmarks.torch_reference`, its ``eager`` and
``compile`` variants) runs first in a subprocess on the same GPU, and the table ends with
jaxsteer / PyTorch per configuration (best batch of each side, best variant of PyTorch).

Columns: grads/s (pairs per second, steady state), ms/call, peak GiB (XLA's buffer assignment
of the program: arguments + outputs + temporaries), compile s (lower + compile; ``cold`` when the
persistent cache missed), cached s (lower + load from the persistent cache after
``jax.clear_caches``), GFLOP/grad (model FLOPs: XLA's cost analysis of the same forward +
backward with plain XLA attention, no remat, one denoiser call, times the steps per gradient; the
FLOPs a rematerialised or cuDNN program really runs differ; the cost analysis of the compiled
GPU program is kept in the JSON as ``compiled_cost_flops_per_grad`` but it leaves out cuBLAS and
cuDNN calls: 30 GFLOP/grad for SD-Turbo against 1,702 from the unoptimised program), MFU (model
FLOP/s over ``--peak-tflops``).

"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsteer import records, sharding
from jaxsteer.benchmarks import CONFIGS, DEFAULT_CONFIGS, common, text_table
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError, is_device_oom

COLUMNS = ("config", "attention", "remat", "batch", "grads/s", "ms/call", "peak GiB",
           "compile s", "cached s", "GFLOP/grad", "MFU %")


@dataclasses.dataclass(frozen=True)
class ThroughputBench(common.KernelBench):
    """`jaxsteer bench throughput` (default runs: the five full-size configs)."""

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
    torch_json: str = opt("", "rows of earlier PyTorch reference runs (their --out JSON, "
                          "comma-separated) to compare with, instead of running it")
    torch_batches: tuple[int, ...] = opt((), "batch sizes of the PyTorch side (default: each "
                                         "config's)")
    torch_variants: tuple[str, ...] = opt(("eager", "compile"), "PyTorch variants: eager, "
                                          "compile (channels_last + torch.compile; its first "
                                          "call compiles for minutes)")
    budget_s: float = opt(0.0, "skip runs once this many seconds have passed (0: no limit); "
                          "results so far are always written")
    cache_dir: str = opt("", "persistent compilation cache folder (default: the CLI's)")


def bench_point(models: common.Models, job: common.Job, batch: int, cfg_run: ThroughputBench, mesh,
                measure_cached: bool = True, log=print) -> dict:
    """Compiles and times one (config, attention, remat, batch)."""
    cfg = CONFIGS[job.config]
    row: dict[str, Any] = {"side": "jax", "config": job.config, "attention": job.attention,
                           "remat": job.remat, "batch": batch, "dtype": cfg_run.dtype,
                           "denoiser_calls": cfg.denoiser_calls}
    collector = common.collector(models, job.config, cfg_run.dtype, job.attention, job.remat, mesh)
    row["params_build_s"] = models.build_s.get((cfg.arch, cfg_run.dtype))
    params = collector.params
    inputs, placed = common.kernel_inputs(collector, job.config, batch, cfg_run.seed)
    cache = jax.config.jax_compilation_cache_dir
    try:
        t0 = time.perf_counter()
        lowered = collector.kernel.lower(params, inputs, placed)
        row["lower_s"] = time.perf_counter() - t0
        before = common.cache_entries(cache)
        t0 = time.perf_counter()
        compiled = lowered.compile()
        row["compile_s"] = row["lower_s"] + time.perf_counter() - t0
        row["cache_miss"] = common.cache_entries(cache) > before if cache else None
        # XLA's cost analysis of the optimised program: on GPUs it leaves out library calls
        # (cuBLAS / cuDNN custom calls), so it undercounts; MFU uses model_flops_per_grad.
        compiled_flops = common.flops(compiled.cost_analysis())
        row["compiled_cost_flops_per_grad"] = compiled_flops / batch if compiled_flops else None
        mem = compiled.memory_analysis()
        if mem is not None:
            row["temp_gib"] = common.gib(mem.temp_size_in_bytes)
            row["args_gib"] = common.gib(mem.argument_size_in_bytes)
            row["peak_gib"] = common.gib(mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                   + mem.output_size_in_bytes - mem.alias_size_in_bytes)
        first, step_s, iters, grads = common.time_calls(compiled, (params, inputs, placed),
                                                  cfg_run.min_time_s)
        g = np.asarray(grads, np.float64)
        row.update(status="ok", first_call_s=first, step_s=step_s, iters=iters,
                   grads_per_s=batch / step_s, finite=bool(np.isfinite(g).all()),
                   grad_shape=list(g.shape), grad_rms=float(np.sqrt(np.mean(g ** 2))))
        del grads, g, compiled
        stats = jax.local_devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            row["process_peak_gib"] = common.gib(stats["peak_bytes_in_use"])
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
            per_call = common.model_flops_per_call(cfg.arch, cfg.guidance, cfg_run.dtype)
            if per_call:
                row["model_flops_per_grad"] = per_call * (cfg.steps if cfg.unroll else 1)
                row["model_tflops_per_s"] = row["model_flops_per_grad"] * row["grads_per_s"] / 1e12
                row["mfu"] = row["model_tflops_per_s"] / cfg_run.peak_tflops
        except Exception as e:  # noqa: BLE001
            row["model_flops_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    log(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()}))
    return row


def check_fp32(models: common.Models, name: str, attention: str, remat: str, mesh, seed: int,
               batch: int = 2) -> dict:
    """Cosine between bf16 and float32 ("highest" matmul precision) gradients of the same pairs."""
    out = {}
    for dtype in ("bfloat16", "float32"):
        att = attention if dtype == "bfloat16" else "xla"
        collector = common.collector(models, name, dtype, att, remat, mesh)
        inputs, placed = common.kernel_inputs(collector, name, batch, seed)
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
        torch_cell = (f"{t['grads_per_s']:.1f} (b{t['batch']}, {t.get('variant', 'eager')})"
                      if t else "-")
        lines.append([name, jax_cell, torch_cell,
                      f"{j['grads_per_s'] / t['grads_per_s']:.2f}" if t else "-"])
    return text_table(["config", "jaxsteer grads/s", "best pytorch grads/s", "jaxsteer/pytorch"],
                      lines, left=3)


def _run_torch(cfg: ThroughputBench, names: list[str], out: Path, budget_s: float,
               module: str = "torch_reference") -> list[dict]:
    cmd = [sys.executable, "-m", f"jaxsteer.benchmarks.{module}", "--configs",
           ",".join(names), "--out", str(out), "--min-time-s", str(cfg.min_time_s),
           "--variants", ",".join(cfg.torch_variants)]
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


def run(cfg: ThroughputBench) -> dict:
    records.check_out(cfg.out, file=True)
    start = time.perf_counter()
    if cfg.cache_dir:
        jax.config.update("jax_compilation_cache_dir", cfg.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jobs = cfg.jobs(DEFAULT_CONFIGS)
    result: dict[str, Any] = {"config": to_dict(cfg), "rows": [], "fp32_check": None,
                              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if cfg.torch:  # before JAX takes the GPU's memory
        names = list(dict.fromkeys(j.config for j in jobs))
        # Each config's PyTorch side is its `reference` module (Flux: flux_reference).
        for module in dict.fromkeys(CONFIGS[n].reference for n in names):
            group = [n for n in names if CONFIGS[n].reference == module]
            stem = "_torch" if module == "torch_reference" else f"_{module}"
            torch_out = cfg.out.with_name(cfg.out.stem + stem + ".json")
            result["rows"] += _run_torch(cfg, group, torch_out,
                                         cfg.budget_s / 3 if cfg.budget_s else 0, module)
    for name in (n for n in cfg.torch_json.split(",") if n):
        path = Path(name)
        if not path.exists():
            raise UserError(f"--torch-json {path} does not exist")
        result["rows"] += json.loads(path.read_text())["rows"]
    dev = jax.devices()[0]
    result.update(device=str(getattr(dev, "device_kind", dev.platform)), backend=dev.platform,
                  jax=jax.__version__, devices=jax.device_count(), peak_tflops=cfg.peak_tflops)
    print(f"bench: {result['device']} x{jax.device_count()}, jax {jax.__version__}", flush=True)
    mesh = sharding.make_mesh()
    models = common.Models(cfg.seed, mesh, cfg.scan_layers)
    if cfg.check_fp32:  # first: a correctness check must not lose to the time budget
        job = common.parse_run(cfg.check_fp32, cfg.attention, cfg.remat)
        try:
            result["fp32_check"] = check_fp32(models, job.config, job.attention, job.remat,
                                              mesh, cfg.seed)
        except Exception as e:  # noqa: BLE001
            result["fp32_check"] = {"status": f"error: {type(e).__name__}: {str(e)[:300]}"}
        print("bench: bf16 vs fp32:", json.dumps(result["fp32_check"]), flush=True)
        common.write_json(cfg.out, result)
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
            common.write_json(cfg.out, result)
    result["seconds"] = time.perf_counter() - start
    common.write_json(cfg.out, result)
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
