"""`jaxsteer.models.architectures`: random-weight networks of the benchmarks (tiny ones here)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.architectures import (
    ARCHITECTURES,
    FLUX_TRANSFORMERS,
    UNETS,
    build,
    denoiser_shapes,
    param_shapes,
    random_cond,
    random_params,
)


@pytest.mark.parametrize("kw,match", [
    (dict(name="sd9"), "unknown architecture 'sd9'"),
    (dict(name="tiny", attention="flash"), "unknown attention 'flash'"),
    (dict(name="tiny", remat_policy="sometimes"), "unknown remat policy 'sometimes'"),
    (dict(name="tiny", dtype="float16"), "bfloat16 or float32"),
])
def test_build_refuses_unknown_names(kw, match):
    with pytest.raises(UserError, match=match):
        build(**{"params": {}, **kw})


def test_every_architecture_names_a_known_network_and_its_text_width():
    for name, arch in ARCHITECTURES.items():
        table = FLUX_TRANSFORMERS if arch.family == "flux" else UNETS
        assert arch.unet in table, name
        key = "joint_attention_dim" if arch.family == "flux" else "cross_attention_dim"
        assert arch.embed_dim == table[arch.unet][key]
    assert ARCHITECTURES["tiny"].unet_config(4)["sample_size"] == 4
    assert "sample_size" not in UNETS["tiny"]                   # the copy, not the table, gets it


@pytest.mark.parametrize("name,tokens,width,pooled", [
    ("tiny", 77, 32, None), ("tiny-xl", 77, 96, 64), ("tiny-flux", 16, 32, 32)])
def test_random_cond_has_the_architectures_rows_and_pooled_vector(name, tokens, width, pooled):
    cond = random_cond(name, seed=3)
    assert cond.emb.shape == (tokens, width) and cond.emb.dtype == jnp.float32
    if pooled is None:
        assert cond.extra == {}
    else:
        assert cond.extra["pooled"].shape == (pooled,)
    np.testing.assert_array_equal(cond.emb, random_cond(name, seed=3).emb)
    assert not np.allclose(cond.emb, random_cond(name, seed=4).emb)


def test_a_built_bundle_without_weights_has_the_architectures_shapes():
    sd = build("tiny", dtype="float32", attention="xla", params={})
    assert sd.model.latent_shape == (4, 8, 8) and sd.model.max_tokens == 77
    assert sd.model.embed_dim == 32 and sd.info["architecture"] == "tiny"
    small = build("tiny", dtype="float32", params={}, sample_size=4)
    assert small.model.latent_shape == (4, 4, 4)
    assert small.model.fingerprint != sd.model.fingerprint      # the size is part of it
    xl = build("tiny-xl", dtype="bfloat16", params={})
    assert xl.model.time_ids == (64.0, 64.0, 0.0, 0.0, 64.0, 64.0)  # 8 latents = 64 pixels
    v = build("tiny", params={}, prediction_type="v_prediction")
    assert v.model.schedule.prediction_type == "v_prediction"
    flux = build("tiny-flux", dtype="float32", params={})
    assert flux.model.latent_shape == (4, 8, 8) and flux.model.max_tokens == 16
    # [schnell]'s schedule is unshifted: sigma of timestep index t is (t + 1) / 1000.
    np.testing.assert_allclose(flux.model.sigmas, np.arange(1, 1001) / 1000, rtol=1e-12)


class _Small(nn.Module):
    """kernels, biases and a norm scale, like a network's tree, compiling in no time."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(96, name="wide")(x)
        x = nn.LayerNorm(name="norm")(x)
        return nn.Dense(8, use_bias=False, name="narrow")(x)

    def init_weights(self, key):
        return self.init(key, jnp.zeros((1, 64)))["params"]


def test_denoiser_shapes_are_the_unets_parameter_tree():
    bundle = build("tiny", dtype="bfloat16", params={})
    shapes = denoiser_shapes(bundle)
    assert set(shapes) == {"unet"}
    leaves = jax.tree.leaves(shapes["unet"])
    assert leaves and all(isinstance(s, jax.ShapeDtypeStruct) for s in leaves)
    assert all(s.dtype == jnp.bfloat16 for s in leaves)
    flux = denoiser_shapes(build("tiny-flux", dtype="float32", params={}))
    assert set(flux) == {"transformer"}


def test_random_params_are_fan_in_scaled_normals_unit_scales_and_zero_biases():
    params = random_params(_Small(), jnp.float32, seed=0)
    shapes = param_shapes(_Small(), jnp.float32)
    assert jax.tree.structure(params) == jax.tree.structure(shapes)
    assert sum(x.size for x in jax.tree.leaves(params)) == 64 * 96 + 96 + 2 * 96 + 96 * 8
    np.testing.assert_array_equal(params["wide"]["bias"], 0.0)
    np.testing.assert_array_equal(params["norm"]["bias"], 0.0)
    np.testing.assert_array_equal(params["norm"]["scale"], 1.0)
    for name, fan_in in (("wide", 64), ("narrow", 96)):
        w = np.asarray(params[name]["kernel"])
        assert abs(w.mean()) < 0.1 * fan_in ** -0.5
        assert np.std(w) * fan_in ** 0.5 == pytest.approx(1.0, rel=0.1), name


def test_random_params_depend_on_the_seed_and_take_the_dtype():
    a, b, c = (random_params(_Small(), jnp.bfloat16, seed=s) for s in (1, 1, 2))
    la, lb, lc = (jax.tree.leaves(t) for t in (a, b, c))
    assert all(x.dtype == jnp.bfloat16 for x in la)
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    assert not np.array_equal(a["wide"]["kernel"], c["wide"]["kernel"])


def test_given_params_are_reused_in_the_bundles_dtype():
    given = {"unet": random_params(_Small(), jnp.float32, seed=0)}
    bf16 = build("tiny", dtype="bfloat16", params=given)
    for x, y in zip(jax.tree.leaves(given), jax.tree.leaves(bf16.params)):
        assert x.dtype == jnp.float32 and y.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x.astype(jnp.bfloat16)))
