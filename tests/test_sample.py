"""`jaxsteer.sample`'s lower-level pieces: sample j comes from fold_in(key, j) whatever the
shard size or device count, resuming makes only what is missing, the pool's sampler settings,
and the PNG of a sample. (The `jaxsteer sample` command is tests/test_cli.py's.)"""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxsteer import sharding
from jaxsteer.errors import UserError
from jaxsteer.pages.html import to_uint8
from jaxsteer.sample import fill_pool, png_bytes, pool_sampler_settings, read_pool
from jaxsteer.store import ShardStore

IDENTITY = {"model": "stub", "steps": 3, "scheduler": "ddim", "spacing": "trailing",
            "timesteps": [], "guidance": 0.0, "seed": 5}


@jax.jit
def _gen(params, cond, uncond, keys_b):
    """A stand-in generator: each latent a function of its own key only."""
    return jax.vmap(lambda k: jax.random.normal(k, (2, 2, 2)))(keys_b) * params + cond


def _pool(folder, shard_size, devices, total=7):
    store = ShardStore.open(folder, "pool", IDENTITY, {}, shard_size=shard_size, total=total)
    mesh = sharding.make_mesh(devices=jax.devices()[:devices])
    with store.writing():
        made = fill_pool(store, _gen, jnp.float32(1.0), jnp.float32(0.0), None,
                         jax.random.key(5), mesh, show=False)
    return made, store


def test_sample_j_is_drawn_from_fold_in_of_j_whatever_the_batching(tmp_path):
    keys = [jax.random.fold_in(jax.random.key(5), j) for j in range(7)]
    want = np.asarray(_gen(jnp.float32(1.0), jnp.float32(0.0), None, jnp.stack(keys)))
    for shard, devices in ((3, 1), (4, 4)):       # the last shard of 3 padded to 4 devices
        made, _ = _pool(tmp_path / f"p{shard}", shard, devices)
        latents, manifest = read_pool(tmp_path / f"p{shard}")
        assert made == 7 and latents.shape == (7, 2, 2, 2) and latents.dtype == np.float32
        np.testing.assert_allclose(latents, want, rtol=1e-6)
        assert manifest["identity"] == IDENTITY


def test_a_resumed_pool_makes_only_its_missing_shards(tmp_path):
    _, store = _pool(tmp_path / "p", 3, 1)
    before, _ = read_pool(tmp_path / "p")
    store.shard_path(1).unlink()
    made, _ = _pool(tmp_path / "p", 3, 1)
    assert made == 3                                    # shard 1: samples 3, 4, 5
    np.testing.assert_array_equal(read_pool(tmp_path / "p")[0], before)


def test_a_folder_without_a_manifest_is_not_a_pool(tmp_path):
    with pytest.raises(UserError, match="is not a sample pool .*--pool none"):
        read_pool(tmp_path)


def test_pool_sampler_settings_come_from_a_readable_pool_only(tmp_path):
    _pool(tmp_path / "p", 7, 1)
    got = pool_sampler_settings({"pool": str(tmp_path / "p"), "steps": 9})
    assert got == {"steps": 3, "scheduler": "ddim", "spacing": "trailing", "timesteps": [],
                   "guidance": 0.0}                     # the model and seed are not sampler's
    assert pool_sampler_settings({}) == {} and pool_sampler_settings({"pool": "none"}) == {}
    assert pool_sampler_settings({"pool": str(tmp_path / "absent")}) == {}


def test_png_bytes_of_an_image_in_minus_one_to_one():
    img = np.random.default_rng(0).uniform(-1, 1, (4, 6, 3)).astype(np.float32)
    back = np.asarray(Image.open(io.BytesIO(png_bytes(img))))
    np.testing.assert_array_equal(back, to_uint8(img))
    assert back.shape == (4, 6, 3)
