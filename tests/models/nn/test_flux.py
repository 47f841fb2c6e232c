"""Flux's networks against independent transcriptions of their reference formulas: 2x2 packing,
rotary embeddings (as complex rotations), T5's relative-position buckets, and the PyTorch names
their weights load from. Numerics against PyTorch itself: test_flux_torch_fixtures.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn.convert import flax_to_pt, pt_to_flax
from jaxsteer.models.nn.flux import (
    FluxConfig,
    FluxTransformer2DModel,
    apply_rope,
    image_ids,
    pack,
    rope,
    unpack,
)
from jaxsteer.models.nn.load_flux import t5_state
from jaxsteer.models.nn.t5 import T5Config, T5EncoderModel, relative_buckets
from jaxsteer.models.tiny import random_params

TINY = FluxConfig(in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
                  num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                  axes_dims_rope=(2, 2, 4))


def test_pack_puts_each_2x2_patch_in_one_token_channel_major():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 6)).astype(np.float32)
    p = np.asarray(pack(jnp.asarray(x)))
    assert p.shape == (2, 2 * 3, 12)
    for i, j, c, di, dj in [(0, 0, 0, 0, 0), (1, 2, 2, 1, 0), (0, 1, 1, 1, 1)]:
        assert p[1, i * 3 + j, c * 4 + di * 2 + dj] == x[1, c, 2 * i + di, 2 * j + dj]
    np.testing.assert_array_equal(np.asarray(unpack(jnp.asarray(p), 4, 6)), x)
    ids = np.asarray(image_ids(4, 6))
    assert ids.shape == (6, 3) and ids[4].tolist() == [0, 1, 1]


def test_rope_rotates_pairs_by_position_times_frequency():
    rng = np.random.default_rng(1)
    axes = (2, 2, 4)
    ids = rng.integers(0, 9, (5, 3))
    x = rng.standard_normal((1, 5, 2, 8))
    out = np.asarray(apply_rope(jnp.asarray(x), *rope(jnp.asarray(ids), axes,
                                                      dtype=jnp.float32)))
    angles = np.concatenate([ids[:, [i]] / 10000.0 ** (np.arange(0, d, 2) / d)
                             for i, d in enumerate(axes)], -1)  # [n, 4]
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * angles)[None, :, None, :]
    ref = np.stack([z.real, z.imag], -1).reshape(x.shape)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def _t5_bucket(rel: int, num_buckets: int, max_distance: int) -> int:
    """transformers' T5Attention._relative_position_bucket (bidirectional), one scalar."""
    num_buckets //= 2
    bucket = num_buckets if rel > 0 else 0
    rel = abs(rel)
    exact = num_buckets // 2
    if rel < exact:
        return bucket + rel
    large = exact + int(math.log(rel / exact) / math.log(max_distance / exact)
                        * (num_buckets - exact))
    return bucket + min(large, num_buckets - 1)


@pytest.mark.parametrize("buckets,distance", [(32, 128), (8, 16)])
def test_t5_relative_buckets_match_the_reference(buckets, distance):
    got = np.asarray(relative_buckets(40, 300, buckets, distance))
    for q, k in [(0, 0), (0, 3), (5, 0), (0, 20), (39, 0), (0, 299), (10, 140), (39, 7)]:
        assert got[q, k] == _t5_bucket(k - q, buckets, distance), (q, k)


def test_transformer_weights_load_from_diffusers_names():
    for guided in (False, True):
        module = FluxTransformer2DModel(FluxConfig(**{**TINY.__dict__, "guidance_embeds": guided}))
        params = random_params(module.init_weights, jax.random.key(0), 0)
        state = flax_to_pt(params)
        for name in ("transformer_blocks.0.attn.to_out.0.weight",
                     "transformer_blocks.0.attn.norm_added_k.weight",
                     "transformer_blocks.0.ff_context.net.0.proj.weight",
                     "transformer_blocks.0.norm1_context.linear.bias",
                     "single_transformer_blocks.0.proj_mlp.weight",
                     "time_text_embed.text_embedder.linear_2.weight", "norm_out.linear.weight",
                     "x_embedder.weight", "context_embedder.bias", "proj_out.weight"):
            assert name in state, name
        assert ("time_text_embed.guidance_embedder.linear_1.weight" in state) == guided
        back = pt_to_flax(state, jax.eval_shape(module.init_weights, jax.random.key(0)))
        jax.tree.map(np.testing.assert_array_equal, back, params)


def test_guidance_distilled_transformer_needs_guidance():
    module = FluxTransformer2DModel(FluxConfig(**{**TINY.__dict__, "guidance_embeds": True}))
    params = random_params(module.init_weights, jax.random.key(0), 0)
    x, ctx, pooled = jnp.ones((1, 4, 16)), jnp.ones((1, 3, 32)), jnp.ones((1, 32))
    args = (x, ctx, pooled, jnp.array([0.5]), image_ids(4, 4), jnp.zeros((3, 3)))
    out = [module.apply({"params": params}, *args, jnp.array([g])) for g in (1.0, 4.0)]
    assert out[0].shape == (1, 4, 16) and not np.allclose(out[0], out[1])
    with pytest.raises(ValueError, match="needs guidance"):
        module.apply({"params": params}, *args, None)


def test_t5_loads_transformers_names_with_the_tied_embedding():
    module = T5EncoderModel(T5Config(vocab_size=20, d_model=16, d_kv=4, d_ff=24, num_layers=2,
                                     num_heads=4, relative_attention_num_buckets=8,
                                     relative_attention_max_distance=16))
    params = random_params(module.init_weights, jax.random.key(0), 0)
    state = {k.replace(".wi.0.", ".wi_0.").replace(".wi.1.", ".wi_1."): v
             for k, v in flax_to_pt(params).items()}
    assert "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in state
    assert "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight" in state
    assert "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" not in state
    state["encoder.embed_tokens.weight"] = state["shared.weight"]  # as transformers saves it
    back = pt_to_flax(t5_state(state), jax.eval_shape(module.init_weights, jax.random.key(0)))
    jax.tree.map(np.testing.assert_array_equal, back, params)
    out = module.apply({"params": back}, jnp.array([[3, 4, 5, 1, 0, 0]]))
    assert out.shape == (1, 6, 16) and bool(jnp.all(jnp.isfinite(out)))
