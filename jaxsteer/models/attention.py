"""Faster internals for diffusers' Flax UNet, opted into per model definition.

diffusers' ``FlaxAttention`` computes attention as two einsums with the whole score matrix in
memory (in bf16, softmax included): at 512x512 (4096 latent tokens) that is the largest tensor of
the UNet, and it is kept for the backward pass. ``jax.nn.dot_product_attention`` computes the same
function with a float32 softmax, and with ``implementation="cudnn"`` as one fused flash-attention
kernel (forward and backward) on NVIDIA GPUs.

diffusers builds its submodules by module-global name inside ``setup`` (at trace time), so
swapping a name while a model is traced changes only that trace; the parameter tree is unchanged
(submodule names come from attributes, not classes). ``patched`` does this as a context manager.

Wiring (for a model family): give the model definition a hashable field, e.g.
``attention: str = "diffusers"``, and trace the UNet call inside ``patched(self.attention)``::

    def predict(self, params, x_bchw, t_b, cond):
        with attention.patched(self.attention, self.remat_policy == "blocks"):
            out = self.unet.apply(...)

The field is part of the definition's hash, so programs traced with and without it are cached
apart (``make_kernel`` is keyed on the model).

Names: ``diffusers`` (unchanged), ``xla`` (jax's reference attention: einsums, fp32 softmax),
``cudnn`` (cuDNN flash attention, bf16/fp16 only, NVIDIA GPUs; the 77-token cross-attention
runs with its keys padded to 128 and masked), ``auto`` (cudnn where it applies, else xla).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("diffusers", "xla", "cudnn", "auto")

_lock = threading.RLock()


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


@functools.cache
def fused_attention_class(implementation: str):
    """A subclass of diffusers' FlaxAttention whose core is ``jax.nn.dot_product_attention``.

    Same fields, same ``setup`` (so the same parameters, to_q/to_k/to_v/to_out_0).
    """
    _originals()
    base = _ORIGINALS["attention"]

    class FusedFlaxAttention(base):
        def __call__(self, hidden_states, context=None, deterministic=True):
            context = hidden_states if context is None else context
            b = hidden_states.shape[0]
            q = self.query(hidden_states).reshape(b, -1, self.heads, self.dim_head)
            k = self.key(context).reshape(b, -1, self.heads, self.dim_head)
            v = self.value(context).reshape(b, -1, self.heads, self.dim_head)
            out = attend(q, k, v, self.scale, implementation)
            out = self.proj_attn(out.reshape(b, -1, self.heads * self.dim_head))
            return self.dropout_layer(out, deterministic=deterministic)

    FusedFlaxAttention.__name__ = FusedFlaxAttention.__qualname__ = (
        f"FusedFlaxAttention_{implementation}")
    return FusedFlaxAttention


@functools.cache
def _remat_classes():
    """Transformer and resnet blocks under ``nn.remat``: the backward pass recomputes one block
    at a time, so only the blocks' inputs stay in memory (one extra forward in all)."""
    import flax.linen as nn

    _originals()
    return (nn.remat(_ORIGINALS["transformer_block"]), nn.remat(_ORIGINALS["resnet"]))


_ORIGINALS: dict = {}


def _originals() -> None:
    if _ORIGINALS:
        return
    from diffusers.models import attention_flax
    from diffusers.models.unets import unet_2d_blocks_flax

    _ORIGINALS.update(attention=attention_flax.FlaxAttention,
                      transformer_block=attention_flax.FlaxBasicTransformerBlock,
                      resnet=unet_2d_blocks_flax.FlaxResnetBlock2D)


@contextlib.contextmanager
def patched(implementation: str = "diffusers", remat_blocks: bool = False):
    """Within the block, diffusers' Flax UNet traces with the given attention and block remat.

    Traces only: a program traced inside keeps what it was traced with after the block ends.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention implementation {implementation!r}: "
                         f"use one of {', '.join(IMPLEMENTATIONS)}")
    if implementation == "diffusers" and not remat_blocks:
        yield
        return
    from diffusers.models import attention_flax
    from diffusers.models.unets import unet_2d_blocks_flax

    with _lock:
        _originals()
        saved = (attention_flax.FlaxAttention, attention_flax.FlaxBasicTransformerBlock,
                 unet_2d_blocks_flax.FlaxResnetBlock2D)
        try:
            if implementation != "diffusers":
                attention_flax.FlaxAttention = fused_attention_class(implementation)
            if remat_blocks:
                block, resnet = _remat_classes()
                attention_flax.FlaxBasicTransformerBlock = block
                unet_2d_blocks_flax.FlaxResnetBlock2D = resnet
            yield
        finally:
            (attention_flax.FlaxAttention, attention_flax.FlaxBasicTransformerBlock,
             unet_2d_blocks_flax.FlaxResnetBlock2D) = saved
