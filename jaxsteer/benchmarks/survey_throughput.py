"""Survey throughput: prompts per hour of `jaxsteer survey` on this accelerator, and a projection
(on paper) of a 10,000-prompt survey on TPU slices.

Each prompt goes through the survey's own per-prompt code: `jaxsteer.survey.Worker` (the
survey's collector, pool-free by default like ``jaxsteer survey --pool 0``) and
`jaxsteer.survey.measure_prompt` (gradients, `estimate_all` with the survey's default estimator
settings, the record's body), then the record is appended and fsynced as the survey does. The
model is a full-size architecture with random weights (`jaxsteer.models.architectures`), so its
prompts have no text: each prompt is a random ``[77, D]`` embedding (`random_cond`) with its own
token rows, all prompts with the same row count (one compiled program). The host-side
tokenization and text-encoder call of a real survey (one encoder forward per prompt) are not
run; they are part of neither column.

Per prompt: ``collect`` (all pairs' gradients on the device, copied to the host), ``estimate``
(every complexity estimator), ``other`` (building the prompt's inputs, the record, the fsynced
append). ``compile`` is the first (warm-up) prompt's time minus the timed prompts' mean.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from jaxsteer import records, sharding, survey
from jaxsteer.benchmarks import CONFIGS, common, text_table
from jaxsteer.collect import PromptInputs, pad_rows
from jaxsteer.complexity import ComplexityConfig
from jaxsteer.config import opt, to_dict
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig, architectures
from jaxsteer.sampling import SamplerConfig
from jaxsteer.store import versions

# TPU systems of the projection: chips, hosts, dense bf16 peak per chip (TFLOP/s).
# v5e-8 (v5litepod-8): one host of 8 chips. v5p-64: 64 TensorCores = 32 chips, 4 chips a host.
TPU_SYSTEMS: dict[str, dict[str, float]] = {
    "v5e-8": {"chips": 8, "hosts": 1, "peak_tflops_per_chip": 197.0},
    "v5p-64": {"chips": 32, "hosts": 8, "peak_tflops_per_chip": 459.0},
}
PHASES = ("collect", "estimate", "other")


def _prompt_inputs(arch: str, index: int, rows: int, bucket: int, seed: int):
    """A distinct random prompt: its own embedding and token rows (``rows`` of them)."""
    first = 1 + index % 8
    token_rows = tuple(range(first, first + rows))
    return PromptInputs(cond=architectures.random_cond(arch, seed + 1000 + index), uncond=None,
                        rows_r=pad_rows(token_rows, bucket), num_rows=rows)


def _calls_per_gradient(pool: int, steps: int) -> int:
    """Guided denoiser calls differentiated per gradient: one from the pool's noised A, or
    pool-free both A's and B's whole K-step chains. (With a pool, its per-prompt generation is
    timed in ``collect`` but its FLOPs are not counted.)"""
    return 1 if pool else 2 * steps


def project(per_prompt: dict[str, float], compile_s: float, peak_tflops: float, devices: int,
            target: int = 10_000) -> dict[str, Any]:
    """Wall time of ``target`` prompts on each of `TPU_SYSTEMS`, from the measured seconds per
    prompt (a projection on paper: nothing here ran on a TPU)."""
    measured_peak = peak_tflops * devices
    out = {}
    for name, s in TPU_SYSTEMS.items():
        chips, hosts = int(s["chips"]), int(s["hosts"])
        aggregate = s["peak_tflops_per_chip"] * chips
        # Seconds of the whole system per prompt (prompts run in parallel over hosts/chips).
        collect = per_prompt["collect"] * measured_peak / aggregate
        estimate = per_prompt["estimate"] / chips
        other = per_prompt["other"] / hosts
        total = collect + estimate + other
        today = collect + per_prompt["estimate"] / hosts + other
        out[name] = {"chips": chips, "hosts": hosts, "aggregate_peak_tflops": aggregate,
                     "collect_s_per_prompt": collect, "estimate_s_per_prompt": estimate,
                     "other_s_per_prompt": other, "prompts_per_hour": 3600 / total,
                     "hours": (compile_s + target * total) / 3600,
                     "hours_estimates_one_chip_per_host": (compile_s + target * today) / 3600}
    return out


def assumptions(peak_tflops: float, devices: int, device: str) -> list[str]:
    return [
        f"collect time scales with aggregate peak bf16 FLOP/s: the TPU system reaches the MFU "
        f"measured here ({device} x{devices} at {peak_tflops:g} TFLOP/s each); per-chip "
        "batches are smaller there (batch / chips per host), which may lower it",
        "estimate time divides by the chip count: prompts split over hosts and, within a host, "
        "each chip estimates its own prompts at this device's speed; today's survey estimates on "
        "one device per host after each prompt's collection (the '1 chip/host' column)",
        "other (host) time divides by the host count, at this host's speed",
        "compile: this device's first-prompt overhead, paid once (hosts compile in parallel)",
        "text tokenization and encoding (one encoder forward per prompt) are not included",
    ]


def bench_survey(config: str = "sd-turbo-1", pairs: int = 256, prompts: int = 4,
                 warmup: int = 1, batch: int = 32, dtype: str = "bfloat16",
                 attention: str = "auto", peak_tflops: float = 989.0, out: str | Path | None = None,
                 pool: int = 0, remat: bool = True, rows: int = 1, complexity: Any = None,
                 devices: int = -1, seed: int = 0, target_prompts: int = 10_000,
                 model_flops: bool = True, sample_size: int | None = None,
                 scan_layers: bool = True, log: Callable[[str], None] = print) -> dict:
    """Times ``warmup`` + ``prompts`` prompts of a survey; returns (and writes) the result.

    Args:
      config: a `jaxsteer.benchmarks.CONFIGS` key; gives the architecture and the sampler
        (steps, scheduler, timesteps, guidance). ``sd-turbo-1``: SD 2.1 UNet, 512x512, 1 step.
      pairs: gradients per prompt (the survey's ``--pairs``).
      prompts: timed prompts; warmup: untimed first prompts (they compile).
      batch: pairs per compiled call (the survey's ``--batch``).
      dtype, attention: of the random-weights architecture (attention ``auto``: cuDNN flash
        attention on NVIDIA GPUs in bf16, else XLA).
      peak_tflops: dense bf16 peak of one measuring device (H100 SXM: 989), for MFU and the
        projection.
      out: JSON path for the result (written atomically), or None.
      pool: the survey's ``--pool`` (0 = pool-free, the survey's default).
      remat: the survey's ``--remat`` (per denoising step; its default is on).
      rows: token rows of every prompt's word (1 = a one-token word).
      complexity: a `ComplexityConfig` (default: the survey's default estimators).
      devices: local devices on the data axis (-1 = all), as ``--devices``.
      target_prompts: prompts of the projected survey.
      model_flops: count model FLOPs (XLA cost analysis, one trace) for the collect MFU.
      sample_size: latent side instead of the architecture's (smaller, for CPU tests).
      scan_layers: `UNetConfig.scan_layers` of the architecture.
    """
    if config not in CONFIGS:
        raise UserError(f"unknown bench config {config!r}: use one of {', '.join(CONFIGS)}")
    if prompts < 1 or warmup < 1:
        raise UserError("survey bench needs at least 1 warm-up and 1 timed prompt")
    bc = CONFIGS[config]
    cfg = survey.SurveyRun(
        model=ModelConfig(name=f"random:{bc.arch}", dtype=dtype, attention=attention),
        sampler=SamplerConfig(steps=bc.steps, scheduler=bc.scheduler, timesteps=bc.timesteps,
                              guidance=bc.guidance, remat=remat),
        pairs=pairs, pool=pool, batch=batch, seed=seed, devices=devices,
        complexity=complexity or ComplexityConfig())
    t0 = time.perf_counter()
    bundle = architectures.build(bc.arch, dtype=dtype, seed=seed, attention=attention,
                                 sample_size=sample_size, scan_layers=scan_layers)
    mesh = sharding.local_mesh(devices)
    bucket = len(pad_rows(tuple(range(rows))))
    worker = survey.Worker(cfg, bundle, mesh, row_bucket=bucket)
    build_s = time.perf_counter() - t0
    dev = jax.devices()[0]
    device = str(getattr(dev, "device_kind", dev.platform))
    ndev = sharding.data_size(mesh)
    log(f"survey bench: {config} ({bc.description}), {pairs} pairs/prompt, batch {batch}, "
        f"{dtype}, attention {attention}, {'pool ' + str(pool) if pool else 'pool-free'}, "
        f"{device} x{ndev}; weights built in {build_s:.1f} s")
    collect_key, estimate_key = jax.random.split(jax.random.key(seed))
    vers = versions()
    compiles: list[str] = []
    timing = {"on": False}

    def listener(event: str, secs: float, **kw: Any) -> None:
        if timing["on"] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(str(kw.get("fun_name", "?")))

    timings = []
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            part = Path(tmp) / "records-000.jsonl"
            for i in range(warmup + prompts):
                timing["on"] = i >= warmup
                start = time.perf_counter()
                inputs = _prompt_inputs(bc.arch, i, rows, bucket, seed)
                body, _ = survey.measure_prompt(worker, inputs, jax.random.fold_in(collect_key, i),
                                                jax.random.fold_in(estimate_key, i))
                survey.append_line(part, {"line": i + 1, "prompt": f"random prompt {i}",
                                          "token": "?", **body, "model": cfg.model.name,
                                          "versions": vers})
                total = time.perf_counter() - start
                sec = body["seconds"]
                row = {"prompt": i, "warmup": i < warmup, "collect": sec["collect"],
                       "estimate": sec["estimate"],
                       "other": total - sec["collect"] - sec["estimate"], "total": total,
                       "subspace_size": body["estimates"]["subspace_size"]["value"]}
                timings.append(row)
                log(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                for k, v in row.items()}))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    timed = [r for r in timings if not r["warmup"]]
    first = timings[0]
    mean = {k: sum(r[k] for r in timed) / len(timed) for k in (*PHASES, "total")}
    compile_split = {k: max(0.0, first[k] - mean[k]) for k in PHASES}
    compile_s = sum(compile_split.values())
    result: dict[str, Any] = {
        "what": "survey throughput", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": device, "devices": ndev, "backend": dev.platform, "jax": jax.__version__,
        "config": config, "arch": bc.arch, "description": bc.description,
        "survey_config": to_dict(cfg), "pairs": pairs, "batch": batch, "dtype": dtype,
        "attention": attention, "pool": pool, "pool_mode": f"pool {pool}" if pool else "pool-free",
        "remat": remat, "rows": rows, "row_bucket": bucket, "sample_size": sample_size,
        "latent_shape": list(bundle.model.latent_shape), "build_s": build_s,
        "timings": timings, "per_prompt_s": mean, "compile_s": compile_s,
        "compile_split_s": compile_split, "compiles_during_timed_prompts": compiles,
        "prompts_per_hour": 3600 / mean["total"], "grads_per_s_collect": pairs / mean["collect"],
        "peak_tflops": peak_tflops, "target_prompts": target_prompts}
    calls = _calls_per_gradient(pool, bc.steps)
    result["denoiser_calls_per_gradient"] = calls * (2 if bc.guidance > 1.0 else 1)
    if model_flops and sample_size is None:  # FLOPs are counted at the architecture's size
        try:
            per_call = common.model_flops_per_call(bc.arch, bc.guidance, dtype)
            if per_call:
                result["model_flops_per_gradient"] = per_call * calls
                result["collect_mfu"] = (result["model_flops_per_gradient"]
                                         * result["grads_per_s_collect"]
                                         / (peak_tflops * 1e12 * ndev))
        except Exception as e:  # noqa: BLE001 - MFU is a detail; the timings still stand
            result["model_flops_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    result["projection"] = project(mean, compile_s, peak_tflops, ndev, target_prompts)
    result["projection_assumptions"] = assumptions(peak_tflops, ndev, device)
    if out is not None:
        records.atomic_write_text(Path(out), json.dumps(result, indent=1, default=str) + "\n")
    return result


def format_survey(result: dict) -> str:
    """The printed report: per-prompt seconds, throughput, and the labelled projection."""
    head = ["prompt", "collect s", "estimate s", "other s", "total s"]
    lines = [[("warm-up " if r["warmup"] else "") + str(r["prompt"])]
             + [f"{r[k]:.2f}" for k in (*PHASES, "total")] for r in result["timings"]]
    m = result["per_prompt_s"]
    lines.append(["mean (timed)"] + [f"{m[k]:.2f}" for k in (*PHASES, "total")])
    c = result["compile_split_s"]
    mfu = result.get("collect_mfu")
    text = [
        f"survey throughput: {result['config']} ({result['description']}), random weights, "
        f"{result['pairs']} pairs/prompt, batch {result['batch']}, {result['dtype']}, "
        f"attention {result['attention']}, {result['pool_mode']}, remat {result['remat']}, "
        f"{result['rows']} token row(s); {result['device']} x{result['devices']}",
        text_table(head, lines),
        f"compile (first prompt minus timed mean): {result['compile_s']:.1f} s "
        f"(collect {c['collect']:.1f}, estimate {c['estimate']:.1f}, other {c['other']:.1f}); "
        f"compiles during timed prompts: {len(result['compiles_during_timed_prompts'])}",
        f"measured: {result['prompts_per_hour']:.0f} prompts/hour; collect "
        f"{result['grads_per_s_collect']:.1f} grads/s"
        + (f", collect MFU {100 * mfu:.1f}% of {result['peak_tflops']:g} TFLOP/s" if mfu else ""),
        "",
        f"PROJECTION (on paper, not measured) of {result['target_prompts']:,} prompts:",
    ]
    phead = ["system", "chips", "hosts", "peak TFLOP/s (sum)", "collect s/p", "estimate s/p",
             "other s/p", "prompts/h", "wall h", "wall h (1 chip/host est.)"]
    plines = [[name, str(p["chips"]), str(p["hosts"]), f"{p['aggregate_peak_tflops']:.0f}",
               f"{p['collect_s_per_prompt']:.3f}", f"{p['estimate_s_per_prompt']:.3f}",
               f"{p['other_s_per_prompt']:.3f}", f"{p['prompts_per_hour']:.0f}",
               f"{p['hours']:.2f}", f"{p['hours_estimates_one_chip_per_host']:.2f}"]
              for name, p in result["projection"].items()]
    text.append(text_table(phead, plines))
    text.append("assumptions (s/p: system seconds per prompt):")
    text += [f"  - {a}" for a in result["projection_assumptions"]]
    return "\n".join(text)


@dataclasses.dataclass(frozen=True)
class SurveyBench(common.KernelBench):
    """`jaxsteer bench survey`: the first run of ``--configs`` (default sd-turbo-1)."""

    peak_tflops: float = opt(989.0, "the chip's dense bf16 peak for MFU (H100 SXM: 989)")
    model_flops: bool = opt(True, "count model FLOPs with XLA's cost analysis (one extra trace)")
    pairs: int = opt(256, "gradients per prompt")
    prompts: int = opt(4, "timed prompts (after one warm-up prompt that compiles)")
    pool: int = opt(0, "the survey's --pool (0 = pool-free, its default)")
    survey_remat: bool = opt(True, "rematerialise each denoising step (the survey's default)")


def run(cfg: SurveyBench) -> dict:
    """Prompts per hour of a survey (first run of --configs, default sd-turbo-1) and a projection
    to TPU slices (`jaxsteer.benchmarks.survey_throughput`)."""
    records.check_out(cfg.out, file=True)
    job = cfg.jobs(("sd-turbo-1",))[0]
    res = bench_survey(job.config, pairs=cfg.pairs, prompts=cfg.prompts, batch=job.batches[0],
                       dtype=cfg.dtype, attention=job.attention, peak_tflops=cfg.peak_tflops,
                       pool=cfg.pool, remat=cfg.survey_remat, seed=cfg.seed,
                       model_flops=cfg.model_flops, scan_layers=cfg.scan_layers, out=cfg.out)
    print(format_survey(res))
    return {"out": str(cfg.out), "prompts_per_hour": round(res["prompts_per_hour"], 1),
            "compile_s": round(res["compile_s"], 1),
            "projection_hours": {k: round(v["hours"], 2) for k, v in res["projection"].items()}}


