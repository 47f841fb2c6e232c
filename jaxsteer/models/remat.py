"""What the UNet call keeps for the backward pass (``remat_policy`` of a model definition).

  none     keep every activation (fastest; most memory);
  matmuls  save the outputs of every matmul, convolution and fused attention (the FLOPs) and
           recompute only norms, activations and other elementwise work (cheap, memory-bound);
  blocks   rematerialise each transformer / resnet block (one extra forward, least memory);
  dots     save matmul outputs without batch dims (``dots_with_no_batch_dims_saveable``):
           convolutions and attention are recomputed too;
  dots_all the same with ``dots_saveable``;
  full     save nothing (one extra forward).

Measured on one H100 (README, performance): SDXL at 1024², 16 pairs, ``matmuls`` 29.2 grads/s
in 63.6 GiB against ``blocks`` 21.6 in 12.5 GiB; without remat 8 pairs fit (40.6 GiB, 29.6).
Multi-step chains also have the sampler's per-step checkpoint (``SamplerConfig.remat``).

The collector's memory ladder (`ladder`) is none -> matmuls -> blocks: on a one-call kernel each
rung keeps strictly less (tests/models/test_remat.py reads XLA's buffer assignment of each).
``full`` is no rung: one checkpoint around the only UNet call recomputes every residual at once
in the backward pass, so it keeps about what ``none`` keeps.
"""

from __future__ import annotations

import jax

REMAT_POLICIES = ("none", "matmuls", "blocks", "dots", "dots_all", "full")
LADDER = ("none", "matmuls", "blocks")

# Primitives whose outputs ``matmuls`` keeps: everything that runs on tensor cores. The cuDNN
# attention primitive lives in a private jax module and is matched by name: jax 0.11.2 binds it
# as ``dot_product_attention_fwd_wrapper`` (seen by the policy on the H100), 0.10 without the
# suffix. Saving its outputs keeps the softmax statistics, so the backward pass does not run
# the attention forward again.
_MATMUL_PRIMITIVES = ("dot_general", "conv_general_dilated")
_ATTENTION_FWD = "dot_product_attention_fwd"


def save_matmuls(prim, *_, **__) -> bool:
    """A `jax.checkpoint` policy: save what costs FLOPs, recompute what costs only bandwidth."""
    return prim.name in _MATMUL_PRIMITIVES or prim.name.startswith(_ATTENTION_FWD)


def checkpoint_policy(name: str):
    """The `jax.checkpoint` policy of ``name``, or None (no checkpoint: none, blocks)."""
    if name not in REMAT_POLICIES:
        raise ValueError(f"unknown remat policy {name!r}: use one of {', '.join(REMAT_POLICIES)}")
    return {"dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
            "dots_all": jax.checkpoint_policies.dots_saveable,
            "matmuls": save_matmuls,
            "full": jax.checkpoint_policies.nothing_saveable}.get(name)


def ladder(policy: str) -> tuple[str, ...]:
    """The policy, then the rungs of `LADDER` below it (each keeps less), ending at ``blocks``."""
    if policy in LADDER:
        return LADDER[LADDER.index(policy):]
    return (policy, LADDER[-1])
