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


def test_a_missing_student_says_how_to_make_it():
    from jaxsteer.models import load
    if bundled.installed("scenes-student"):
        pytest.skip("a distilled scenes student is installed")
    for call in (lambda: bundled.folder("scenes-student"), lambda: load("scenes-student")):
        with pytest.raises(UserError, match="WORLD=scenes bash scripts/gpu_distill.sh.*--teacher "
                                            "scenes.*jaxsteer.scenes.assets install-student"):
            call()
    assert bundled.installed_student("scenes") is None
    assert bundled.PRESETS["scenes-student"] == {"steps": 4, "guidance": 0.0, "scheduler": "ddim"}
    assert bundled.PROBES["scenes-student"] == "scenes"


def test_the_shipped_student_is_intact_and_samples_as_it_was_distilled():
    """The bundled scenes student (scripts/gpu_distill.sh, WORLD=scenes): its checksums hold,
    it ships only its UNet and sampler, and its preset is the sampler its training recorded."""
    from jaxsteer.scenes.student_checksums import SHA256 as STUDENT
    if not bundled.installed("scenes-student"):
        pytest.skip("no distilled scenes student is installed")
    assert set(checksums(assets.STUDENT_DIR)) == set(STUDENT)
    assert not (assets.STUDENT_DIR / "vae").exists()  # the teacher's, put back on load
    assert sum(p.stat().st_size for p in assets.STUDENT_DIR.rglob("*.msgpack")) <= 10e6
    assert bundled.folder("scenes-student").exists()
    saved = json.loads((assets.STUDENT_DIR / "training.json").read_text())
    assert saved["world"] == "scenes" and saved["sampler"]["steps"] == 4
    assert bundled.PRESETS["scenes-student"] == {"steps": 4, "guidance": 0.0, "scheduler": "ddim"}


def test_an_installed_student_ships_its_unet_and_loads_with_its_teachers_vae(
        micro_scenes, tmp_path, monkeypatch):
    """install-student keeps only what differs from the teacher (the VAE, text encoder and
    tokenizer are the teacher's); the bundled loader puts them back and checks both."""
    import importlib
    import sys
    import types

    import jax

    from jaxsteer.distill.run import export_student
    from jaxsteer.models import load

    teacher = load(str(micro_scenes), dtype="float32")
    unet = jax.tree.map(lambda a: np.asarray(a) + 0.01, jax.device_get(teacher.params["unet"]))
    sampler = {"steps": 2, "guidance": 0.0, "scheduler": "ddim", "timesteps": [999, 499]}
    student = export_student(micro_scenes, tmp_path / "student", unet, "float16",
                             {"sampler": sampler, "world": "scenes"})
    root = tmp_path / "assets"
    shutil.copytree(micro_scenes, root / "micro")
    sums = assets.install_student(student, root / "scenes-student", micro_scenes,
                                  tmp_path / "s.py")
    assert {n.split("/")[0] for n in sums} == {"model_index.json", "training.json", "unet",
                                               "scheduler"}

    monkeypatch.setattr(bundled, "ASSETS", root)
    monkeypatch.setattr(bundled, "STUDENTS", {**bundled.STUDENTS, "scenes-student": "micro"})
    module = types.ModuleType("jaxsteer.scenes.student_checksums")
    module.SHA256 = sums
    monkeypatch.setitem(sys.modules, "jaxsteer.scenes.student_checksums", module)
    assert importlib.import_module("jaxsteer.scenes.student_checksums").SHA256 == sums
    assert bundled.installed_student("micro") == "scenes-student"
    got = bundled.load("scenes-student", dtype="float32")
    assert got.info["teacher"] == "micro" and got.model == teacher.model
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.float16(b)),
                 jax.device_get(got.params["unet"]), unet)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(got.params["vae"]),
                 jax.device_get(teacher.params["vae"]))
    assert bundled._student_sampler("scenes-student")["steps"] == 2

    other = tmp_path / "other"
    shutil.copytree(student, other)
    (other / "vae" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="does not share its teacher's files \\(vae/config.json"):
        assets.install_student(other, root / "x", micro_scenes, tmp_path / "x.py")
    with pytest.raises(SystemExit, match="error: .* is not a student folder"):
        assets.main(["install-student", str(tmp_path / "none")])
