"""The same gradient computation written as a researcher would in PyTorch + diffusers.

Not a package dependency: a benchmark script, run on the GPU next to `jaxsteer bench`::

    python -m jaxsteer.benchmarks.torch_reference --configs sd-turbo-1:32/64,sdxl-dmd2:16 \
        --variants eager,compile --out torch.json

Per pair, exactly what `jaxsteer.collect.pair_loss` computes: A noised to the first step's
timestep with fresh noise, the UNet (bf16 weights and activations, PyTorch's scaled-dot-product
attention, diffusers' default processor) called once or through the unrolled steps (CFG batched
as [uncond; cond]), MSE of the clean estimate to B, and ``torch.autograd.grad`` of the summed
loss w.r.t. a per-pair offset of the token embeddings ``[p, 77, D]`` (all 77 rows). Weights do
not require grad (no weight gradients); multi-step runs checkpoint each step
(``torch.utils.checkpoint``), as jaxsteer rematerialises each step. Same UNet configs and
schedules as the JAX side (`jaxsteer.benchmarks.CONFIGS`, `jaxsteer.models.architectures`).

Variants (``--variants``), each a row of its own: ``eager`` (the module as it is) and ``compile``
(what a careful PyTorch user adds: the UNet's weights and inputs in ``channels_last`` and
``torch.compile`` of the UNet, whose first call compiles the forward and, through AOTAutograd,
the backward: 146-256 s on an H200, kept in the row as ``first_call_s``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from jaxsteer.benchmarks import CONFIGS, torch_cli
from jaxsteer.models.architectures import ARCHITECTURES, SCHEDULES
from jaxsteer.models.base import schedule_from_config
from jaxsteer.models.schedulers import make_schedule
from jaxsteer.records import atomic_write_text


def _schedule(cfg) -> dict:
    """The step arrays jaxsteer's Collector uses for this configuration (computed by JAX on CPU)."""
    noise = schedule_from_config(SCHEDULES[ARCHITECTURES[cfg.arch].schedule])
    s = make_schedule(noise, cfg.steps, cfg.scheduler, None, None, cfg.timesteps or None)
    n = s.num_steps if cfg.unroll else 1
    return {"t": np.asarray(s.t_s)[:n].tolist(), "alpha": np.asarray(s.alpha_s)[:n].tolist(),
            "alpha_next": np.asarray(s.alpha_next_s)[:n].tolist(),
            "prediction_type": noise.prediction_type}


VARIANTS = torch_cli.VARIANTS


def build_unet(arch_name: str, device: str = "cuda"):
    import torch
    from diffusers import UNet2DConditionModel

    arch = ARCHITECTURES[arch_name]
    with torch.device(device):
        unet = UNet2DConditionModel(**arch.unet_config())
    return unet.to(torch.bfloat16).eval().requires_grad_(False)


def make_grad_fn(unet, cfg, sched: dict, emb, pooled, uncond, size: int,
                 channels_last: bool = False):
    """Returns ``f(a, b) -> grads [p, 77, D]`` (float32) for one batch of pairs; ``unet`` may be
    a compiled module (``channels_last``: latents go in in that memory format)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    fmt = torch.channels_last if channels_last else torch.contiguous_format

    bf16 = torch.bfloat16
    use_cfg = cfg.guidance > 1.0
    pred = sched["prediction_type"]

    def unet_call(x, t, enc):
        b = x.shape[0]
        added = None
        if pooled is not None:
            px = float(size * 8)
            added = {"text_embeds": pooled.to(bf16).expand(b, -1),
                     "time_ids": torch.tensor([px, px, 0.0, 0.0, px, px], device=x.device,
                                              dtype=bf16).expand(b, -1)}
        tt = torch.full((b,), t, device=x.device, dtype=torch.long)
        x = x.to(bf16).contiguous(memory_format=fmt)
        return unet(x, tt, enc, added_cond_kwargs=added, return_dict=False)[0].float()

    def step(x, cond, t, alpha, alpha_next):
        if use_cfg:
            p = x.shape[0]
            enc = torch.cat([uncond.to(bf16).expand(p, -1, -1), cond])
            out2 = unet_call(torch.cat([x, x]), t, enc)
            out = out2[:p] + cfg.guidance * (out2[p:] - out2[:p])
        else:
            out = unet_call(x, t, cond)
        a, s = math.sqrt(alpha), math.sqrt(1.0 - alpha)
        if pred == "epsilon":
            x0, eps = (x - s * out) / a, out
        else:  # v_prediction
            x0, eps = a * x - s * out, a * out + s * x
        return x0, math.sqrt(alpha_next) * x0 + math.sqrt(1.0 - alpha_next) * eps

    many = len(sched["t"]) > 1

    def grads(a_pchw, b_pchw):
        p = a_pchw.shape[0]
        delta = torch.zeros((p, *emb.shape), device=a_pchw.device, dtype=torch.float32,
                            requires_grad=True)
        cond = (emb + delta).to(bf16)
        a0 = sched["alpha"][0]
        x = math.sqrt(a0) * a_pchw + math.sqrt(1.0 - a0) * torch.randn_like(a_pchw)
        x0 = None
        for t, al, an in zip(sched["t"], sched["alpha"], sched["alpha_next"], strict=True):
            if many:
                x0, x = checkpoint(step, x, cond, t, al, an, use_reentrant=False)
            else:
                x0, x = step(x, cond, t, al, an)
        loss = (x0 - b_pchw).square().flatten(1).mean(1).sum()
        (g,) = torch.autograd.grad(loss, delta)
        return g

    return grads


def _variant(unet, variant: str):
    """(the module to call, channels_last) of a variant."""
    import torch

    if variant == "eager":
        return unet, False
    unet = unet.to(memory_format=torch.channels_last)
    return torch.compile(unet, dynamic=False), True


def _time_point(fn, a, b, min_time_s: float) -> dict:
    """first call (compiles), then the steady state over >= 3 calls."""
    import torch

    t0 = time.perf_counter()
    g = fn(a, b)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    fn(a, b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    g = fn(a, b)
    torch.cuda.synchronize()
    one = time.perf_counter() - t0
    iters = max(3, min(50, int(min_time_s / max(one, 1e-3))))
    t0 = time.perf_counter()
    for _ in range(iters):
        g = fn(a, b)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / iters
    return {"status": "ok", "first_call_s": first, "step_s": step_s, "iters": iters,
            "grads_per_s": a.shape[0] / step_s, "finite": bool(torch.isfinite(g).all()),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "grad_shape": list(g.shape)}


def bench_config(name: str, batches: list[int], min_time_s: float = 3.0,
                 variants: tuple[str, ...] = ("eager",), log=print) -> list[dict]:
    """Times one configuration for each variant at each batch size; a variant stops growing the
    batch at its first OOM."""
    import torch

    cfg = CONFIGS[name]
    arch = ARCHITECTURES[cfg.arch]
    sched = _schedule(cfg)
    t0 = time.perf_counter()
    unet = build_unet(cfg.arch)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    gen = torch.Generator("cuda").manual_seed(0)
    dev = "cuda"
    emb = torch.randn((77, arch.embed_dim), generator=gen, device=dev)
    uncond = torch.randn((77, arch.embed_dim), generator=gen, device=dev)
    pooled = (torch.randn((arch.pooled_dim,), generator=gen, device=dev)
              if arch.family == "sdxl" else None)
    rows = []
    for variant in variants:   # eager first: compile converts the module to channels_last
        net, channels_last = _variant(unet, variant)
        fn = make_grad_fn(net, cfg, sched, emb, pooled, uncond, arch.sample_size, channels_last)
        for batch in batches:
            row = {"side": "torch", "config": name, "variant": variant, "batch": batch,
                   "attention": "sdpa", "remat": "step" if len(sched["t"]) > 1 else "none",
                   "build_s": build_s}
            shape = (batch, 4, arch.sample_size, arch.sample_size)
            a = torch.randn(shape, generator=gen, device=dev)
            b = torch.randn(shape, generator=gen, device=dev)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                row.update(_time_point(fn, a, b, min_time_s))
            except torch.cuda.OutOfMemoryError:
                row.update(status="oom")
            rows.append(row)
            log(json.dumps(row))
            del a, b
            if row["status"] == "oom":
                torch.cuda.empty_cache()
                break
        del net, fn
    del unet
    torch.cuda.empty_cache()
    return rows


def parse_configs(text: str, batches: str = "") -> list[tuple[str, list[int]]]:
    """``name[:b1/b2],...`` -> [(name, batches)]; a name without batches takes ``batches``
    (comma-separated) or the config's own PyTorch batches, ascending."""
    out = []
    for item in (c for c in text.split(",") if c):
        name, _, own = item.partition(":")
        if name not in CONFIGS:
            raise SystemExit(f"torch_reference: unknown config {name!r}")
        cfg = CONFIGS[name]
        sizes = ([int(b) for b in own.split("/") if b] if own
                 else [int(b) for b in batches.split(",") if b] if batches
                 else sorted(cfg.torch_batches or cfg.batches))
        out.append((name, sizes))
    return out


def main(argv: list[str] | None = None) -> int:
    torch_cli.keep_jax_on_cpu()
    args, variants = torch_cli.parse(
        "torch_reference", __doc__, argv, configs="sd-turbo-1",
        configs_help="comma-separated CONFIGS names, each optionally with its batches: "
                     "sd-turbo-1:32/64",
        batches_help="comma-separated batch sizes of configs that name none (default: each "
                     "config's own, ascending)", variants="eager", out="torch_reference.json")
    jobs = parse_configs(args.configs, args.batches)

    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    start = time.perf_counter()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "diffusers": __import__("diffusers").__version__, "variants": list(variants),
              "rows": []}
    for name, batches in jobs:
        if args.budget_s and time.perf_counter() - start > args.budget_s:
            print(f"torch_reference: budget spent, skipping {name}", flush=True)
            continue
        try:
            result["rows"] += bench_config(name, batches, args.min_time_s, variants)
        except Exception as e:  # noqa: BLE001 - record and go on to the next configuration
            result["rows"].append({"side": "torch", "config": name,
                                   "status": f"error: {e!r}"[:500]})
            print(result["rows"][-1], flush=True)
        # atomic: the GPU script stops this process with `timeout` (mid-compile, perhaps)
        atomic_write_text(Path(args.out), json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
