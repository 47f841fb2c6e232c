"""Attention kernels of jaxsteer's UNet (its ``attention`` field, `models.nn.layers.attention_fn`).

diffusers' Flax port computed attention as two einsums with the whole score matrix in memory (in
bf16, softmax included): at 512x512 (4096 latent tokens) that is the largest tensor of the UNet,
and it is kept for the backward pass. ``jax.nn.dot_product_attention`` computes the same
function with a float32 softmax, and with ``implementation="cudnn"`` as one fused
flash-attention kernel (forward and backward) on NVIDIA GPUs.

Names: ``diffusers`` (the einsum form), ``xla`` (jax's reference attention: einsums, fp32
softmax), ``cudnn`` (cuDNN flash attention, bf16/fp16 only, NVIDIA GPUs; the 77-token
cross-attention runs with its keys padded to 128 and masked), ``auto`` (cudnn where it applies,
else xla). The name is a field of the model definition, so programs traced with different
kernels are cached apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("diffusers", "xla", "cudnn", "auto")


def nvidia_gpu() -> bool:
    """Whether the default device is an NVIDIA GPU (where cuDNN's fused attention exists)."""
    device = jax.devices()[0]
    return device.platform == "gpu" and "nvidia" in str(getattr(device, "device_kind", "")).lower()


def _cudnn_ok(dtype, head_dim: int) -> bool:
    """Whether cuDNN flash attention takes these inputs (checked on the host, at trace time)."""
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return False
    if head_dim % 8 or head_dim > 256:
        return False
    return nvidia_gpu()


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def attend(q_bthd: jax.Array, k_bshd: jax.Array, v_bshd: jax.Array, scale: float,
           implementation: str) -> jax.Array:
    """softmax(q k^T * scale) v over [batch, tokens, heads, head_dim] inputs.

    cuDNN's fused kernel takes sequence lengths in multiples of 64 for training (jax 0.11.2
    refused the 77-key cross-attention: "Unsupported sequence length Q 4096, KV 77"), so shorter
    key lists are zero-padded to the next multiple of 64 and masked by ``key_value_seq_lengths``
    (padded keys get no weight, padded values no gradient). Queries whose length is not a
    multiple of 64 (tiny models) run through XLA; so does ``auto`` off NVIDIA GPUs / bf16.
    """
    impl = implementation
    if impl in ("cudnn", "auto"):
        if q_bthd.shape[1] % 64:
            impl = "xla"
        elif impl == "auto":
            impl = "cudnn" if _cudnn_ok(q_bthd.dtype, q_bthd.shape[-1]) else "xla"
    s = k_bshd.shape[1]
    if impl != "cudnn" or s % 64 == 0:
        return jax.nn.dot_product_attention(q_bthd, k_bshd, v_bshd, scale=scale,
                                            implementation=impl)
    return padded_attention(q_bthd, k_bshd, v_bshd, scale, impl, _round_up(s, 64))


def padded_attention(q_bthd: jax.Array, k_bshd: jax.Array, v_bshd: jax.Array, scale: float,
                     implementation: str, to: int) -> jax.Array:
    """Attention with keys/values zero-padded to ``to`` tokens and the padding masked out."""
    b, s = k_bshd.shape[:2]
    pad = ((0, 0), (0, to - s), (0, 0), (0, 0))
    lengths = jnp.full((b,), s, jnp.int32)
    return jax.nn.dot_product_attention(q_bthd, jnp.pad(k_bshd, pad), jnp.pad(v_bshd, pad),
                                        scale=scale, key_value_seq_lengths=lengths,
                                        implementation=implementation)
