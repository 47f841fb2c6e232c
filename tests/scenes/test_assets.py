"""The bundled scenes model: intact (checksums, damage reported), small, loadable through
`jaxsteer.models.load("scenes")` with the scenes world's shapes, and the trained weights."""

import json
import shutil

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models import bundled
from jaxsteer.models.shipped import checksums
from jaxsteer.scenes import assets
from jaxsteer.scenes.assets import ASSET_DIR, install, verify
from jaxsteer.scenes.checksums import SHA256


def test_bundled_model_matches_its_checksums():
    assert set(checksums(ASSET_DIR)) == set(SHA256)
    assert verify() == ASSET_DIR == bundled.folder("scenes")


def test_bundled_model_is_small_and_latent_space():
    weights = sum(p.stat().st_size for p in ASSET_DIR.rglob("*.msgpack"))
    assert weights <= 10e6
    index = json.loads((ASSET_DIR / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "FlaxAutoencoderKL"]
    saved = json.loads((ASSET_DIR / "training.json").read_text())
    assert saved["progress"]["unet_step"] == saved["config"]["steps"] == 24000
    assert saved["progress"]["vae_step"] == saved["config"]["vae_steps"] == 4000


def test_damage_is_reported(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="damaged.*unet/diffusion_flax_model.msgpack"):
        verify(ASSET_DIR, {**SHA256, "unet/diffusion_flax_model.msgpack": "0" * 64})
    with pytest.raises(UserError, match="missing"):
        verify(tmp_path)
    with pytest.raises(UserError, match="not in this installation.*install FOLDER"):
        verify(ASSET_DIR, {})
    copy = tmp_path / "assets" / "scenes"
    shutil.copytree(ASSET_DIR, copy)
    (copy / "vae" / "config.json").write_text("{}")
    monkeypatch.setattr(bundled, "ASSETS", copy.parent)
    monkeypatch.setattr(assets, "ASSET_DIR", copy)
    with pytest.raises(UserError, match="bundled scenes model .* is damaged.*vae/config.json"):
        bundled.load("scenes")


def test_install_copies_and_records_checksums(tmp_path):
    sums = install(ASSET_DIR, tmp_path / "scenes", tmp_path / "sums.py")
    assert sums == SHA256
    assert '"vae/diffusion_flax_model.msgpack"' in (tmp_path / "sums.py").read_text()
    half = tmp_path / "half"
    shutil.copytree(ASSET_DIR, half)
    record = json.loads((half / "training.json").read_text())
    record["progress"]["unet_step"] = 1000
    (half / "training.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="step 1000 of 24000"):
        install(half, tmp_path / "x", tmp_path / "x.py")
    shutil.rmtree(half / "vae")
    with pytest.raises(UserError, match="not a model folder"):
        install(half, tmp_path / "x", tmp_path / "x.py")


def test_the_bundled_model_loads_and_holds_the_trained_weights():
    """Shapes through the library's loader; then one cheap numerical check that these are the
    trained weights: the VAE reconstructs renders of the world and the UNet, conditioned on
    their captions, predicts the noise added to their latents (a random model: error ~1)."""
    import jax
    import jax.numpy as jnp

    from jaxsteer.models import load
    from jaxsteer.scenes.render import sample_batch

    b = load("scenes", dtype="float32")
    model, params = b.model, b.params
    assert b.info["model"] == "scenes" and model.vae is not None
    assert model.latent_shape == (4, 16, 16) and model.embed_dim == 128
    assert bundled.PRESETS["scenes"] == {"steps": 25, "guidance": 3.0, "scheduler": "ddim"}
    assert bundled.PROBES["scenes"] == "scenes"

    images, captions, _ = sample_batch(np.random.default_rng(0), 8)
    z = jax.jit(model.encode_image)(params, jnp.asarray(images))
    assert z.shape == (8, 4, 16, 16)
    recon = np.asarray(jax.jit(model.decode)(params, z))
    assert recon.shape == (8, 64, 64, 3)
    assert np.abs(recon - images).mean() < 0.03       # trained: 0.01 (L1 in [-1, 1] units)

    ids = jnp.stack([jnp.asarray(model.tokenize(c).ids_et) for c in captions])
    cond = model.encode_text(params, ids)
    t = jnp.full((8,), 500, jnp.int32)
    a = float(model.schedule.alphas_cumprod[500])
    noise = jax.random.normal(jax.random.key(0), z.shape)
    x_t = np.sqrt(a) * z + np.sqrt(1 - a) * noise
    eps = jax.jit(model.predict)(params, x_t, t, cond)
    assert float(jnp.mean((eps - noise) ** 2)) < 0.05  # trained: 0.004; random UNet: 1.06


def test_the_install_command_says_what_is_wrong_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: .* is not a model folder exported by"):
        assets.main(["install", str(tmp_path)])
    with pytest.raises(SystemExit, match="usage"):
        assets.main(["install"])
