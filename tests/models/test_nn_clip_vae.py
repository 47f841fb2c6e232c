"""jaxsteer's CLIP text encoder and AutoencoderKL against transformers' / diffusers' Flax classes
on the same random weights (float32), and through the PyTorch-layout converter.

Skipped where those Flax classes are absent (transformers 5, diffusers 0.40).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn import AutoencoderKL, CLIPTextConfig, CLIPTextModel, VAEConfig
from jaxsteer.models.nn.convert import flax_to_pt, pt_to_flax
from jaxsteer.models.tiny import random_params

ATOL = 1e-5


def _clip_cases():
    vit_l = {"vocab_size": 50, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
             "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
             "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    big_g = vit_l | {"hidden_size": 48, "hidden_act": "gelu", "projection_dim": 40,
                     "eos_token_id": 2}
    return [("vit-l", vit_l, False), ("bigG", big_g, True)]


def _ids(vocab, eos):
    rng = np.random.default_rng(0)
    ids = rng.integers(3, vocab - 1, (2, 16)).astype(np.int32)
    ids[0, 9:], ids[1, 5:] = eos, eos  # end token then padding with it, as the pipelines do
    if eos == 2:  # old configs pick the end token by the largest id
        ids[0, 9], ids[1, 5] = vocab - 1, vocab - 1
    return ids


@pytest.mark.parametrize("name,cfg,projection", _clip_cases())
def test_clip_matches_transformers_flax(name, cfg, projection):
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "FlaxCLIPTextModel"):
        pytest.skip("transformers without Flax classes")
    ref_cfg = transformers.CLIPTextConfig(**cfg)
    cls = (transformers.FlaxCLIPTextModelWithProjection if projection
           else transformers.FlaxCLIPTextModel)
    ref = cls(ref_cfg, _do_init=False)
    params = random_params(lambda k: ref.init_weights(k, (1, 16)), jax.random.key(0), 0)
    ours = CLIPTextModel(CLIPTextConfig.from_transformers(ref_cfg.to_dict(), projection))
    shapes = jax.eval_shape(ours.init_weights, jax.random.key(0))
    assert jax.tree.structure(shapes) == jax.tree.structure(params)
    converted = pt_to_flax(flax_to_pt(params), shapes)  # through PyTorch names and layout
    ids = _ids(cfg["vocab_size"], cfg["eos_token_id"])
    pos = np.broadcast_to(np.arange(16), ids.shape)
    r = ref.module.apply({"params": params}, ids, np.ones_like(ids), pos,
                         output_hidden_states=True)
    o = ours.apply({"params": converted}, ids)
    errs = {"last": jnp.abs(o.last_hidden_state - r.last_hidden_state).max(),
            "penultimate": jnp.abs(o.penultimate - r.hidden_states[-2]).max(),
            "pooled": jnp.abs(o.pooled - (r.pooler_output if not projection else
                                          r.last_hidden_state[np.arange(2), [9, 5]])).max()}
    if projection:
        errs["text_embeds"] = jnp.abs(o.text_embeds - r.text_embeds).max()
    print(name, {k: f"{float(v):.1e}" for k, v in errs.items()})
    assert len(o.hidden_states) == len(r.hidden_states)
    assert max(float(v) for v in errs.values()) < ATOL


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
