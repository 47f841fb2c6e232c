"""jaxsteer's UNet against diffusers 0.39's Flax UNet on the same random weights (float32).

Skipped where diffusers' Flax classes are absent (they are an optional extra, removed in 0.40).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn import UNet2DConditionModel, UNetConfig
from jaxsteer.models.tiny import random_params

ATOL = 1e-5

SD = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64),
      "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 8,
      "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
      "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D")}
# SD 2.x-like: linear projections and heads per block; SDXL-like: text-time embedding and two
# transformer layers in the cross-attention blocks, three resolutions.
SD2 = SD | {"use_linear_projection": True, "attention_head_dim": (2, 4)}
SDXL = {"sample_size": 8, "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64, 64),
        "layers_per_block": 2, "cross_attention_dim": 48, "attention_head_dim": (2, 4, 8),
        "transformer_layers_per_block": (1, 2, 2),
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 32 + 6 * 8, "use_linear_projection": True}


def _inputs(cfg, seed=0):
    rng = np.random.default_rng(seed)
    b = 2
    x = rng.standard_normal((b, 4, 8, 8)).astype(np.float32)
    t = np.array([999.0, 321.0], np.float32)
    emb = rng.standard_normal((b, 7, cfg["cross_attention_dim"])).astype(np.float32)
    added = None
    if cfg.get("addition_embed_type") == "text_time":
        added = {"text_embeds": rng.standard_normal((b, 32)).astype(np.float32),
                 "time_ids": np.tile(np.array([64, 64, 0, 0, 64, 64], np.float32), (b, 1))}
    return x, t, emb, added


def _out_and_grad(apply, params, x, t, emb, added):
    w = jnp.asarray(np.random.default_rng(1).standard_normal(x.shape).astype(np.float32))

    def loss(e):
        out = apply(params, x, t, e, added)
        return jnp.sum(out * w), out

    (_, out), g = jax.value_and_grad(loss, has_aux=True)(emb)
    return out, g


@pytest.mark.parametrize("name,cfg", [("sd", SD), ("sd2", SD2), ("sdxl", SDXL)])
def test_unet_matches_diffusers_flax(name, cfg):
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "FlaxUNet2DConditionModel"):
        pytest.skip("diffusers without Flax classes")
    ref = diffusers.FlaxUNet2DConditionModel(**cfg)
    params = random_params(ref.init_weights, jax.random.key(0), 0)
    ours = UNet2DConditionModel(UNetConfig.from_diffusers(dict(ref.config), diffusers_flax=True),
                                attention="diffusers")
    assert jax.tree.structure(jax.eval_shape(
        lambda: ours.init(jax.random.key(0), *_inputs(cfg))["params"])) == jax.tree.structure(
        params)
    x, t, emb, added = _inputs(cfg)

    @jax.jit
    def both(params, x, t, emb, added):
        def ref_apply(p, *a):
            return ref.apply({"params": p}, *a, return_dict=False)[0]
        def our_apply(p, *a):
            return ours.apply({"params": p}, *a)
        return (_out_and_grad(ref_apply, params, x, t, emb, added),
                _out_and_grad(our_apply, params, x, t, emb, added))

    (ref_out, ref_g), (out, g) = both(params, x, t, emb, added)
    err, gerr = float(jnp.max(jnp.abs(out - ref_out))), float(jnp.max(jnp.abs(g - ref_g)))
    print(f"{name}: max abs error out {err:.2e} (scale {float(jnp.max(jnp.abs(ref_out))):.2f}), "
          f"grad {gerr:.2e} (scale {float(jnp.max(jnp.abs(ref_g))):.2f})")
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    np.testing.assert_allclose(g, ref_g, atol=ATOL * max(1.0, float(jnp.max(jnp.abs(ref_g)))),
                               rtol=0)


def _apply(module, params, *args):
    return module.apply({"params": params}, *args)


@pytest.mark.parametrize("attention,remat", [("xla", "blocks"), ("xla", "matmuls")])
def test_options_keep_the_function(attention, remat):
    """Attention kernel and remat policy are module fields; none changes the numbers."""
    cfg = UNetConfig.from_diffusers(SD)
    base = UNet2DConditionModel(cfg, attention="diffusers")
    other = UNet2DConditionModel(cfg, attention=attention, remat=remat)
    params = random_params(base.init_weights, jax.random.key(0), 0)
    x, t, emb, _ = _inputs(SD)

    @jax.jit
    def both(params, x, t, emb):
        return [_out_and_grad(functools.partial(_apply, m), params, x, t, emb, None)
                for m in (base, other)]

    (out0, g0), (out1, g1) = both(params, x, t, emb)
    np.testing.assert_allclose(out1, out0, atol=ATOL, rtol=0)
    np.testing.assert_allclose(g1, g0, atol=ATOL, rtol=0)
    if remat == "matmuls":  # the policy really wraps the forward: a checkpoint in the jaxpr
        jaxpr = str(jax.make_jaxpr(jax.grad(lambda e: other.apply({"params": params}, x, t,
                                                                  e).sum()))(emb))
        assert "checkpoint" in jaxpr or "remat" in jaxpr


def test_unsupported_options_are_refused():
    with pytest.raises(ValueError, match="time_cond_proj_dim"):
        UNetConfig.from_diffusers(SD | {"time_cond_proj_dim": 256})
    with pytest.raises(ValueError, match="block type"):
        UNetConfig.from_diffusers(SD | {"down_block_types": ["SimpleCrossAttnDownBlock2D"] * 2})
