"""Benchmark configurations shared by `jaxsteer bench` and the PyTorch reference.

Plain data only (no jax or torch at import): `torch_reference` imports this from a process that
must not start JAX on the GPU.

Each configuration is one gradient computation of DESIGN.md section 1.3 on a full-size
architecture with random weights (`jaxsteer.models.architectures`): a pool pair (A, B), A noised
to the first step's timestep, one denoiser call (or ``steps`` unrolled calls), MSE to B's latent,
d loss / d the prompt's token embeddings, all 77 rows ``[77, D]`` (Flux: all 512 T5 rows
``[512, 4096]``, the clean estimate ``x - sigma v`` of one transformer call).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ThroughputConfig:
    arch: str                       # key of jaxsteer.models.architectures.ARCHITECTURES
    steps: int                      # K of the sampler
    scheduler: str                  # ddim | euler | lcm
    description: str
    timesteps: tuple[int, ...] = ()
    guidance: float = 0.0
    unroll: bool = False            # differentiate through all K steps (else one call)
    batches: tuple[int, ...] = (8,)  # pairs per call tried by default (best one reported)
    torch_batches: tuple[int, ...] = ()  # the PyTorch side's (default: ``batches``)
    remat: str = "none"             # default remat of the JAX side (see bench.REMATS): the
    #                                 fastest measured on the H100 (README, performance)
    reference: str = "torch_reference"   # module of jaxsteer.benchmarks with the PyTorch side

    @property
    def denoiser_calls(self) -> int:
        """UNet evaluations per gradient (CFG doubles them)."""
        return (self.steps if self.unroll else 1) * (2 if self.guidance > 1.0 else 1)


CONFIGS: dict[str, ThroughputConfig] = {
    "sdxl-dmd2": ThroughputConfig(
        "sdxl", 4, "lcm", "SDXL UNet, 1024x1024, DMD2 one-call gradient at t=999, guidance 0",
        timesteps=(999, 749, 499, 249), batches=(16, 8), remat="matmuls"),
    "sd-turbo-1": ThroughputConfig(
        "sd-turbo", 1, "euler", "SD 2.1 UNet, 512x512, 1 step", batches=(64, 32),
        torch_batches=(8, 32, 64)),
    "sd-turbo-4": ThroughputConfig(
        "sd-turbo", 4, "euler", "SD 2.1 UNet, 512x512, 4 steps unrolled", unroll=True,
        batches=(16,), torch_batches=(16, 32), remat="matmuls"),
    "sd15-20": ThroughputConfig(
        "sd15", 20, "ddim", "SD 1.5 UNet, 512x512, 20 steps unrolled, guidance 7.5",
        guidance=7.5, unroll=True, batches=(8,), remat="step"),
    "sdxl-turbo-1": ThroughputConfig(
        "sdxl-turbo", 1, "euler", "SDXL UNet, 512x512, 1 step", batches=(32, 16)),
    # 24 GB of bf16 weights: each block is rematerialised (one extra forward) so that 8-16
    # pairs of activations fit one H200 beside them.
    "flux-schnell": ThroughputConfig(
        "flux-schnell", 4, "ddim", "FLUX.1 [schnell] transformer, 1024x1024 (4,096 image "
        "tokens), 512 T5 rows, one call at t=999 (sigma 1)", batches=(8, 16), remat="blocks",
        torch_batches=(8, 16), reference="flux_reference"),
    # Tiny versions (tests, CPU smoke runs).
    "tiny-1": ThroughputConfig("tiny", 1, "euler", "tiny SD UNet, 1 step", batches=(4,)),
    "tiny-2-cfg": ThroughputConfig("tiny", 2, "ddim", "tiny SD UNet, 2 steps, guidance 2",
                                   guidance=2.0, unroll=True, batches=(4,), remat="full"),
    "tiny-xl-1": ThroughputConfig("tiny-xl", 1, "euler", "tiny SDXL UNet, 1 step", batches=(4,)),
    "tiny-flux-1": ThroughputConfig("tiny-flux", 4, "ddim", "tiny Flux transformer, one call",
                                    batches=(4,), remat="blocks", reference="flux_reference"),
}

DEFAULT_CONFIGS = ("sd-turbo-1", "sdxl-dmd2", "sd-turbo-4", "sdxl-turbo-1", "sd15-20")


def text_table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """One `jaxsteer bench sample` configuration: what `jaxsteer sample` runs for a pool."""

    arch: str                       # key of jaxsteer.models.architectures.ARCHITECTURES
    steps: int                      # K denoiser calls per image (guidance 0: one call a step)
    scheduler: str                  # euler | lcm (jaxsteer's; diffusers' Euler / LCM schedulers)
    description: str
    timesteps: tuple[int, ...] = ()
    batches: tuple[int, ...] = (16,)  # images per call tried by default


SAMPLE_CONFIGS: dict[str, SampleConfig] = {
    "sd-turbo": SampleConfig("sd-turbo", 1, "euler", "SD-Turbo (SD 2.1 UNet), 1 step, 512x512",
                             batches=(64,)),
    "sdxl-dmd2": SampleConfig("sdxl", 4, "lcm", "SDXL UNet (DMD2), 4 LCM steps 999/749/499/249, "
                              "1024x1024", timesteps=(999, 749, 499, 249), batches=(16,)),
    # Tiny version (tests, CPU smoke runs).
    "tiny": SampleConfig("tiny", 2, "lcm", "tiny SD UNet, 2 LCM steps", timesteps=(999, 499),
                         batches=(4,)),
}
DEFAULT_SAMPLE_CONFIGS = ("sd-turbo", "sdxl-dmd2")
