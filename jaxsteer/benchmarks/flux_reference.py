"""The Flux gradient of `jaxsteer bench throughput` written as a researcher would in PyTorch.

Not a package dependency: a benchmark script, run on the GPU next to `jaxsteer bench` (which
starts it with ``--torch`` for configurations whose ``reference`` is this module)::

    python -m jaxsteer.benchmarks.flux_reference --configs flux-schnell --batches 8 \
        --variants eager,compile --out flux_torch.json

Per pair, what `jaxsteer.collect.pair_loss` computes for a Flux model (`jaxsteer.models.flux`):
A noised to the first step's timestep with fresh noise (at t=999 of [schnell], sigma 1, A is
pure noise), in VP coordinates ``x``; the flow latent ``x_s = sqrt((1 - s)^2 + s^2) x``, packed
2x2 as FluxPipeline packs it; one call of diffusers' ``FluxTransformer2DModel`` (bf16 weights
and activations, PyTorch's scaled-dot-product attention) for the velocity ``v``; the clean
estimate ``x_s - s v``; MSE to B; ``torch.autograd.grad`` of the summed loss w.r.t. a per-pair
offset of all 512 T5 rows ``[p, 512, 4096]``. Weights do not require grad. With ``--remat
blocks`` (the default) every transformer block is checkpointed (diffusers'
``enable_gradient_checkpointing``, non-reentrant), as the JAX side's ``blocks`` remat: both keep
one block's activations for the backward pass; ``--remat none`` keeps them all, as the JAX
side's ``none``. ``compile`` mode is diffusers' regional compilation (``compile_repeated_blocks``:
each block class compiled once by ``torch.compile``), the way diffusers documents compiling Flux.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from jaxsteer.benchmarks import CONFIGS, torch_cli
from jaxsteer.models.architectures import ARCHITECTURES
from jaxsteer.models.flux import flow_sigmas, vp_schedule
from jaxsteer.models.schedulers import make_schedule
from jaxsteer.models.tiny_flux import SCHNELL_SCHEDULER

MODES = torch_cli.VARIANTS


def flux_schedule(cfg) -> dict:
    """The first step jaxsteer's Collector runs for this configuration: its training timestep,
    VP alpha and flow sigma (computed by JAX on the CPU)."""
    arch = ARCHITECTURES[cfg.arch]
    sigmas = flow_sigmas(SCHNELL_SCHEDULER, (arch.sample_size // 2) ** 2)
    s = make_schedule(vp_schedule(sigmas), cfg.steps, cfg.scheduler, None, None,
                      cfg.timesteps or None)
    t = int(np.asarray(s.t_s)[0])
    return {"t": t, "alpha": float(np.asarray(s.alpha_s)[0]), "sigma": float(sigmas[t])}


def build_transformer(arch_name: str, dtype=None, device: str = "cuda"):
    """diffusers' FluxTransformer2DModel of the architecture's config, random weights (the
    library's own initialisation), made directly on ``device`` in ``dtype`` (default bf16)."""
    import torch
    from diffusers import FluxTransformer2DModel

    cfg = ARCHITECTURES[arch_name].flux_config()
    cfg["axes_dims_rope"] = list(cfg["axes_dims_rope"])
    dtype = dtype or torch.bfloat16
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)   # made in bf16: no float32 copy of 12B weights first
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**cfg)
    finally:
        torch.set_default_dtype(default)
    return model.to(dtype).eval().requires_grad_(False)


def pack(x):
    """[b, c, h, w] -> [b, (h/2)(w/2), 4c], FluxPipeline's ``_pack_latents``."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(x, h: int, w: int):
    """FluxPipeline's ``_unpack_latents`` for a latent of height ``h`` and width ``w``."""
    b, _, k = x.shape
    x = x.view(b, h // 2, w // 2, k // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, k // 4, h, w)


def position_ids(h: int, w: int, tokens: int, device: str = "cuda"):
    """(img_ids [(h/2)(w/2), 3], txt_ids [tokens, 3]) as FluxPipeline makes them."""
    import torch

    rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    img = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(-1, 3)
    return img.float().to(device), torch.zeros(tokens, 3, device=device)


def make_grad_fn(transformer, sched: dict, emb, pooled, latent_hw: int):
    """``f(a, b) -> grads [p, tokens, D]`` (float32) for one batch of pairs, in the
    transformer's dtype (bf16 for the benchmark)."""
    import torch

    dtype = next(transformer.parameters()).dtype
    h = w = latent_hw
    img_ids, txt_ids = position_ids(h, w, emb.shape[0], emb.device)
    s, alpha = sched["sigma"], sched["alpha"]
    c = math.sqrt((1 - s) ** 2 + s ** 2)

    def grads(a_pchw, b_pchw, noise=None):
        """``noise``: the pairs' noise (default: fresh), for checks against jaxsteer's."""
        p = a_pchw.shape[0]
        delta = torch.zeros((p, *emb.shape), device=a_pchw.device, dtype=torch.float32,
                            requires_grad=True)
        cond = (emb + delta).to(dtype)
        noise = torch.randn_like(a_pchw) if noise is None else noise
        x = math.sqrt(alpha) * a_pchw + math.sqrt(1.0 - alpha) * noise
        x_flow = c * x
        v = transformer(hidden_states=pack(x_flow).to(dtype), encoder_hidden_states=cond,
                        pooled_projections=pooled.to(dtype).expand(p, -1),
                        timestep=torch.full((p,), s, device=x.device, dtype=dtype),
                        img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        x0 = x_flow - s * unpack(v.float(), h, w)
        loss = (x0 - b_pchw).square().flatten(1).mean(1).sum()
        (g,) = torch.autograd.grad(loss, delta)
        return g

    return grads


def time_fn(fn, args, min_time_s: float) -> dict:
    """First call (compile included), then steady seconds per call over >= 3 calls."""
    import torch

    t0 = time.perf_counter()
    out = fn(*args)
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn(*args)
    torch.cuda.synchronize()
    one = time.perf_counter() - t0
    iters = max(3, min(50, int(min_time_s / max(one, 1e-3))))
    t0 = time.perf_counter()
    for _ in range(iters):
        out = fn(*args)
    torch.cuda.synchronize()
    return {"first_call_s": first, "step_s": (time.perf_counter() - t0) / iters, "iters": iters,
            "out": out}


def bench_config(name: str, batches: list[int], modes: tuple[str, ...] = MODES,
                 min_time_s: float = 3.0, emit=lambda row: print(json.dumps(row), flush=True),
                 remat: str = "blocks") -> list[dict]:
    """Times one configuration per mode and batch (``emit`` gets each row as it is measured);
    a mode stops growing its batch at the first out-of-memory."""
    import torch

    cfg = CONFIGS[name]
    arch = ARCHITECTURES[cfg.arch]
    sched = flux_schedule(cfg)
    # cuDNN's SDPA backward failed at Flux's 4,608 tokens (torch 2.11, H200, 2026-12-03: an
    # illegal memory access, then `mha_graph.execute ... is_good()`): SDPA's flash and
    # memory-efficient kernels remain, as a user would fall back to.
    torch.backends.cuda.enable_cudnn_sdp(False)
    t0 = time.perf_counter()
    transformer = build_transformer(cfg.arch)
    if remat == "blocks":
        transformer.enable_gradient_checkpointing()
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    gen = torch.Generator("cuda").manual_seed(0)
    emb = torch.randn((arch.tokens, arch.embed_dim), generator=gen, device="cuda")
    pooled = torch.randn((arch.pooled_dim,), generator=gen, device="cuda")
    fn = make_grad_fn(transformer, sched, emb, pooled, arch.sample_size)
    rows = []
    for mode in modes:
        if mode == "compile":
            transformer.compile_repeated_blocks(fullgraph=True)
        for batch in batches:
            row = {"side": "torch", "config": name, "batch": batch, "mode": mode,
                   "attention": "sdpa" + ("+compile" if mode == "compile" else ""),
                   "remat": remat, "build_s": build_s, "timestep": sched["t"]}
            shape = (batch, arch.latent_channels, arch.sample_size, arch.sample_size)
            a = torch.randn(shape, generator=gen, device="cuda")
            b = torch.randn(shape, generator=gen, device="cuda")
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                timed = time_fn(fn, (a, b), min_time_s)
                g = timed.pop("out")
                row.update(status="ok", **timed, grads_per_s=batch / timed["step_s"],
                           finite=bool(torch.isfinite(g).all()), grad_shape=list(g.shape),
                           peak_gib=torch.cuda.max_memory_allocated() / 2**30)
                del g
            except torch.cuda.OutOfMemoryError:
                row.update(status="oom")
            rows.append(row)
            emit(row)
            del a, b
            if row["status"] == "oom":
                torch.cuda.empty_cache()
                break
    del transformer, fn
    torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    torch_cli.keep_jax_on_cpu()
    args, modes = torch_cli.parse(
        "flux_reference", __doc__, argv, configs="flux-schnell",
        configs_help="comma-separated CONFIGS names",
        batches_help="comma-separated batch sizes (default: each config's torch_batches, "
                     "ascending)", variants="eager,compile", out="flux_reference.json",
        remat="blocks")

    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    start = time.perf_counter()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "diffusers": __import__("diffusers").__version__, "rows": []}
    for name in [c for c in args.configs.split(",") if c]:
        if args.budget_s and time.perf_counter() - start > args.budget_s:
            print(f"flux_reference: budget spent, skipping {name}", flush=True)
            continue
        cfg = CONFIGS[name]
        batches = ([int(b) for b in args.batches.split(",") if b] if args.batches
                   else sorted(cfg.torch_batches or cfg.batches))

        def emit(row):   # every row on disk at once: a run cut short by a timeout keeps them
            print(json.dumps(row), flush=True)
            result["rows"].append(row)
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)

        try:
            bench_config(name, batches, modes, args.min_time_s, emit, args.remat)
        except Exception as e:  # noqa: BLE001 - record and go on to the next configuration
            emit({"side": "torch", "config": name, "status": f"error: {e!r}"[:500]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
