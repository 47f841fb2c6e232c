"""The command line the PyTorch reference benchmarks share (`torch_reference`, `flux_reference`,
`sampling_reference`): each runs in a process of its own, started by its `jaxsteer bench`, with
the GPU left to PyTorch."""

from __future__ import annotations

import argparse
import os

VARIANTS = ("eager", "compile")   # compile: channels_last (UNets) + torch.compile


def keep_jax_on_cpu() -> None:
    """JAX (schedules only) stays on the CPU of this process. The package import may already
    have imported jax, so its config is set beside the environment."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    import jax

    jax.config.update("jax_platforms", "cpu")


def parse(module: str, doc: str, argv: list[str] | None, *, configs: str, configs_help: str,
          batches_help: str, variants: str, out: str, remat: str | None = None
          ) -> tuple[argparse.Namespace, tuple]:
    """(arguments, variants) of ``python -m jaxsteer.benchmarks.<module>``; a variant outside
    `VARIANTS` is one line and exit 2. With ``remat`` (its default), the module also takes
    ``--remat blocks|none`` (per-block gradient checkpointing, or none)."""
    ap = argparse.ArgumentParser(prog=f"python -m jaxsteer.benchmarks.{module}",
                                 description=doc.splitlines()[0])
    ap.add_argument("--configs", default=configs, help=configs_help)
    ap.add_argument("--batches", default="", help=batches_help)
    ap.add_argument("--variants", default=variants, help="comma-separated: eager, compile "
                    "(channels_last + torch.compile)")
    ap.add_argument("--min-time-s", type=float, default=3.0, help="timed seconds per point")
    ap.add_argument("--budget-s", type=float, default=0.0, help="skip configs once this many "
                    "seconds have passed (0: no limit)")
    ap.add_argument("--out", default=out)
    if remat is not None:
        ap.add_argument("--remat", default=remat, choices=("blocks", "none"),
                        help="blocks: checkpoint every transformer block; none: keep every "
                        "activation (more memory, no second forward)")
    args = ap.parse_args(argv)
    chosen = tuple(v for v in args.variants.split(",") if v)
    if not chosen or any(v not in VARIANTS for v in chosen):
        ap.error(f"--variants takes {', '.join(VARIANTS)}")
    return args, chosen
