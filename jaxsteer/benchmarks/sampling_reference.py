"""The sampling of `jaxsteer bench sample` written as a diffusers pipeline runs it, in PyTorch.

Not a package dependency: a benchmark script, run on the GPU by `jaxsteer bench sample --torch`
(or alone)::

    python -m jaxsteer.benchmarks.sampling_reference --configs sd-turbo,sdxl-dmd2 \
        --variants eager,compile --out sample_torch.json

The loop is the denoising part of ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline``
called with ``prompt_embeds=`` (and for SDXL ``pooled_prompt_embeds=``), guidance 0 and
``output_type="latent"``: ``set_timesteps`` per call, noise times ``init_noise_sigma``, then per
step ``scale_model_input``, one UNet call (bf16 weights and activations, PyTorch's
scaled-dot-product attention, diffusers' default processor) and ``scheduler.step``. SD-Turbo
runs diffusers' ``EulerDiscreteScheduler`` (trailing spacing, 1 step), SDXL-DMD2 the
``LCMScheduler`` at timesteps 999/749/499/249 (DMD2's recipe). The UNet configs are jaxsteer's
(`jaxsteer.models.architectures`), weights random. ``compile`` wraps the UNet in
``torch.compile(fullgraph=True)``. Every point times >= 3 calls after two warm-up calls.
"""

from __future__ import annotations

import json
import sys
import time

from jaxsteer.benchmarks import SAMPLE_CONFIGS, torch_cli
from jaxsteer.benchmarks.flux_reference import time_fn
from jaxsteer.models.architectures import ARCHITECTURES, SCHEDULES

MODES = torch_cli.VARIANTS


def build_unet(arch_name: str, device: str = "cuda"):
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device(device):
        unet = UNet2DConditionModel(**ARCHITECTURES[arch_name].unet_config())
    return unet.to(torch.bfloat16).eval().requires_grad_(False)


def make_scheduler(sc, arch):
    """diffusers' scheduler of the configuration, from the architecture's noise schedule."""
    from diffusers import EulerDiscreteScheduler, LCMScheduler

    config = dict(SCHEDULES[arch.schedule])
    if sc.scheduler == "lcm":
        return LCMScheduler.from_config(config)
    if sc.scheduler == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise ValueError(f"no diffusers scheduler for {sc.scheduler!r}")


def make_sampler(unet, scheduler, sc, arch, emb, pooled):
    """``f(noise [b, 4, h, w]) -> latents`` with the pipeline's denoising loop."""
    import torch

    bf16 = torch.bfloat16

    @torch.no_grad()
    def sample(noise):
        b = noise.shape[0]
        if sc.timesteps:
            scheduler.set_timesteps(timesteps=list(sc.timesteps), device=noise.device)
        else:
            scheduler.set_timesteps(sc.steps, device=noise.device)
        x = noise * scheduler.init_noise_sigma
        enc = emb.to(bf16).expand(b, -1, -1)
        added = None
        if pooled is not None:
            px = float(arch.sample_size * 8)
            added = {"text_embeds": pooled.to(bf16).expand(b, -1),
                     "time_ids": torch.tensor([px, px, 0.0, 0.0, px, px], device=x.device,
                                              dtype=bf16).expand(b, -1)}
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(x, t).to(bf16)
            eps = unet(inp, t, encoder_hidden_states=enc, added_cond_kwargs=added,
                       return_dict=False)[0]
            x = scheduler.step(eps.float(), t, x, return_dict=False)[0]
        return x

    return sample


def bench_config(name: str, batches: list[int], modes: tuple[str, ...], min_time_s: float,
                 emit) -> None:
    import torch

    sc = SAMPLE_CONFIGS[name]
    arch = ARCHITECTURES[sc.arch]
    t0 = time.perf_counter()
    unet = build_unet(sc.arch)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    gen = torch.Generator("cuda").manual_seed(0)
    emb = torch.randn((77, arch.embed_dim), generator=gen, device="cuda")
    pooled = (torch.randn((arch.pooled_dim,), generator=gen, device="cuda")
              if arch.family == "sdxl" else None)
    for mode in modes:
        net = torch.compile(unet, fullgraph=True) if mode == "compile" else unet
        fn = make_sampler(net, make_scheduler(sc, arch), sc, arch, emb, pooled)
        for batch in batches:
            row = {"side": "torch", "config": name, "mode": mode, "batch": batch,
                   "steps": sc.steps, "build_s": build_s}
            noise = torch.randn((batch, 4, arch.sample_size, arch.sample_size), generator=gen,
                                device="cuda")
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                timed = time_fn(fn, (noise,), min_time_s)
                x = timed.pop("out")
                row.update(status="ok", **timed, images_per_s=batch / timed["step_s"],
                           finite=bool(torch.isfinite(x).all()), latent_std=float(x.std()),
                           peak_gib=torch.cuda.max_memory_allocated() / 2**30)
            except torch.cuda.OutOfMemoryError:
                row.update(status="oom")
            emit(row)
            if row["status"] == "oom":
                torch.cuda.empty_cache()
                break
    del unet
    torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    torch_cli.keep_jax_on_cpu()
    args, modes = torch_cli.parse(
        "sampling_reference", __doc__, argv, configs="sd-turbo",
        configs_help="comma-separated SAMPLE_CONFIGS",
        batches_help="per config, e.g. sd-turbo:32/64,sdxl-dmd2:16 (default: each config's "
                     "own)", variants="eager,compile", out="sample_torch.json")
    chosen = dict(item.split(":", 1) for item in args.batches.split(",") if ":" in item)

    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    start = time.perf_counter()
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "diffusers": __import__("diffusers").__version__, "rows": []}

    def emit(row):   # every row on disk at once: a run cut short keeps what it measured
        print(json.dumps(row), flush=True)
        result["rows"].append(row)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)

    # Every configuration eager first, then compiled: a run cut short still has eager rows.
    for mode in modes:
        for name in [c for c in args.configs.split(",") if c]:
            if args.budget_s and time.perf_counter() - start > args.budget_s:
                print(f"sampling_reference: budget spent, skipping {name} {mode}", flush=True)
                continue
            batches = ([int(b) for b in chosen[name].split("/") if b] if name in chosen
                       else list(SAMPLE_CONFIGS[name].batches))
            try:
                bench_config(name, batches, (mode,), args.min_time_s, emit)
            except Exception as e:  # noqa: BLE001 - record and go on to the next one
                emit({"side": "torch", "config": name, "mode": mode,
                      "status": f"error: {e!r}"[:500]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
