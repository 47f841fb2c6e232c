import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import sharding
from jaxsteer.collect import Collector
from jaxsteer.models import load
from jaxsteer.models.tiny import build_tiny_sdxl
from jaxsteer.sampling import SamplerConfig


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return load(str(build_tiny_sdxl(tmp_path_factory.mktemp("m") / "tiny-sdxl")))


def test_sdxl_concatenates_both_encoders_and_keeps_pooled(sdxl):
    m = sdxl.model
    assert m.family == "sdxl" and m.embed_dim == 32 + 64
    assert m.time_ids == (16.0, 16.0, 0.0, 0.0, 16.0, 16.0)
    cond = m.encode_text(sdxl.params, jnp.asarray(m.tokenize("a dog").ids_et)[None])
    assert cond.emb.shape == (1, 77, 96) and cond.extra["pooled"].shape == (1, 64)


def test_sdxl_gradients_through_the_same_collector(sdxl):
    """Nothing downstream knows the family: the same Collector differentiates SDXL."""
    col = Collector(sdxl, SamplerConfig(steps=1), sharding.make_mesh())
    prompt = col.prepare("a dog", "dog")
    lat = np.random.default_rng(0).standard_normal((8, 4, 8, 8)).astype(np.float32)
    g = np.asarray(col(prompt, np.arange(8), jax.random.key(0), lat, lat[::-1]))
    assert g.shape == (8, 4, 96) and np.all(np.isfinite(g)) and np.abs(g).max() > 0
