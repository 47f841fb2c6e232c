"""jaxsteer's CLIP text encoder against transformers' Flax classes on the same random weights
(float32), and through the PyTorch-layout converter.

Skipped where those Flax classes are absent (transformers 5).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn import CLIPTextConfig, CLIPTextModel
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
