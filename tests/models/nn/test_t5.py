"""`jaxsteer.models.nn.t5`: the config reader and T5's RMS norm, against numpy. (Relative
position buckets and the transformers names are tests/models/nn/test_flux.py's.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn.t5 import T5Config, T5LayerNorm


def test_config_takes_known_keys_skips_none_and_refuses_other_feed_forwards():
    cfg = T5Config.from_transformers({"d_model": 32, "num_heads": 4, "d_kv": None,
                                      "is_gated_act": True, "model_type": "t5"})
    assert (cfg.d_model, cfg.num_heads, cfg.d_kv) == (32, 4, T5Config().d_kv)
    assert T5Config.from_transformers({"feed_forward_proj": "gated-gelu"}) == T5Config()
    with pytest.raises(ValueError, match="feed_forward_proj 'relu' is not supported"):
        T5Config.from_transformers({"feed_forward_proj": "relu"})


def test_rms_norm_divides_by_the_root_mean_square_without_centring():
    x = np.array([[3.0, 4.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], np.float32) + 2.0
    scale = np.array([1.0, 2.0, 0.5, 1.0], np.float32)
    norm = T5LayerNorm(eps=1e-6)
    out = jax.jit(norm.apply)({"params": {"scale": jnp.asarray(scale)}}, jnp.asarray(x))
    want = x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-6) * scale
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-6)
    half = T5LayerNorm(dtype=jnp.bfloat16).apply({"params": {"scale": jnp.ones(4)}},
                                                 jnp.asarray(x, jnp.bfloat16))
    assert half.dtype == jnp.bfloat16
