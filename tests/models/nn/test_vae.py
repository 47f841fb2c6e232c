"""jaxsteer's AutoencoderKL against diffusers' Flax class on the same random weights (float32),
and through the PyTorch-layout converter.

Skipped where that Flax class is absent (diffusers 0.40).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn import AutoencoderKL, VAEConfig
from jaxsteer.models.nn.convert import flax_to_pt, pt_to_flax
from jaxsteer.models.tiny import random_params

ATOL = 1e-5


VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (16, 32),
       "layers_per_block": 1, "norm_num_groups": 8,
       "down_block_types": ("DownEncoderBlock2D",) * 2,
       "up_block_types": ("UpDecoderBlock2D",) * 2, "sample_size": 16}


def test_vae_matches_diffusers_flax():
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "FlaxAutoencoderKL"):
        pytest.skip("diffusers without Flax classes")
    ref = diffusers.FlaxAutoencoderKL(**VAE)
    params = random_params(ref.init_weights, jax.random.key(0), 2)
    ours = AutoencoderKL(VAEConfig.from_diffusers(dict(ref.config)))
    shapes = jax.eval_shape(ours.init_weights, jax.random.key(0))
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    state = flax_to_pt(params, vae=True)
    assert "encoder.mid_block.attentions.0.to_q.weight" in state
    converted = pt_to_flax(state, shapes)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    r_dist = ref.apply({"params": params}, x, method=ref.encode).latent_dist
    o_dist = ours.apply({"params": converted}, x, method="encode")
    # diffusers' Flax encode leaves the latents channels last; ours are channels first.
    r_mean, r_logvar = (jnp.transpose(a, (0, 3, 1, 2)) for a in (r_dist.mean, r_dist.logvar))
    z = o_dist.mean
    r_img = ref.apply({"params": params}, z, method=ref.decode).sample
    o_img = ours.apply({"params": converted}, z, method="decode")
    errs = [float(jnp.abs(o_dist.mean - r_mean).max()),
            float(jnp.abs(o_dist.logvar - r_logvar).max()),
            float(jnp.abs(o_img - r_img).max())]
    print("vae mean / logvar / decode", [f"{e:.1e}" for e in errs])
    assert max(errs) < ATOL
