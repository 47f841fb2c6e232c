"""The memory ladder (models/remat.py): each rung keeps strictly less, and none changes the
gradients.

XLA's buffer assignment (``memory_analysis``) of the UNet's gradient w.r.t. the text embedding,
on a tiny UNet whose stack of transformer blocks dominates its activations (a stack of
identical blocks is where ``blocks`` pays: one block's internals live at a time), traced
unrolled (the default) and scanned; ``blocks`` scans either way.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.collect import remat_ladder
from jaxsteer.models.nn import UNet2DConditionModel, UNetConfig
from jaxsteer.models.remat import LADDER, ladder
from jaxsteer.models.tiny import random_params

CFG = UNetConfig.from_diffusers({
    "sample_size": 8, "block_out_channels": (32,), "layers_per_block": 1,
    "cross_attention_dim": 16, "attention_head_dim": 1, "norm_num_groups": 8,
    "transformer_layers_per_block": 4, "use_linear_projection": True, "mid_block_type": None,
    "down_block_types": ("CrossAttnDownBlock2D",), "up_block_types": ("UpBlock2D",)})


def test_ladder_order():
    assert LADDER == ("none", "matmuls", "blocks")
    assert ladder("none") == LADDER and ladder("matmuls") == ("matmuls", "blocks")
    assert ladder("full") == ("full", "blocks") and remat_ladder("dots") == ("dots", "blocks")


@pytest.mark.parametrize("scan", [False, True], ids=["unrolled", "scanned"])
def test_each_rung_keeps_less_and_the_same_gradient(scan):
    cfg = dataclasses.replace(CFG, scan_layers=scan)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4, 4, 8, 8)), jnp.float32)
    emb = jnp.asarray(rng.standard_normal((4, 7, 16)), jnp.float32)
    params = random_params(UNet2DConditionModel(cfg).init_weights, jax.random.key(0), 0)
    temp, grads = {}, {}
    for policy in LADDER:
        unet = UNet2DConditionModel(cfg, attention="xla", remat=policy)

        def loss(e, p, x, unet=unet):
            return jnp.sum(jnp.square(unet.apply({"params": p}, x, jnp.full((4,), 999.0), e)))

        compiled = jax.jit(jax.grad(loss)).lower(emb, params, x).compile()
        temp[policy] = compiled.memory_analysis().temp_size_in_bytes
        grads[policy] = np.asarray(compiled(emb, params, x))
    print({k: f"{v / 1e6:.2f} MB" for k, v in temp.items()})
    assert temp["none"] > temp["matmuls"] > temp["blocks"]
    assert temp["blocks"] < 0.6 * temp["none"]   # measured on CPU: 1.66 / 3.94 MB
    # float32 sums in another order: an absolute slack at 1e-6 of the gradients' scale (a
    # rung that dropped or repeated a term would be off by O(scale)); 1e-6 flat failed once on
    # one of 448 entries (1.2e-6 off, scale 1.8)
    atol = 1e-6 * float(np.abs(grads["none"]).max())
    for policy in LADDER[1:]:
        np.testing.assert_allclose(grads[policy], grads["none"], rtol=1e-5, atol=atol)
