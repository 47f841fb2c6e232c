"""The bundled shapes models: present (or said how to make), intact, small, and loadable by the
library classes."""

import json
import shutil

import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.shipped import checksums
from jaxsteer.shapes.assets import ASSET_DIR, verify
from jaxsteer.shapes.checksums import SHA256


def test_bundled_model_matches_its_checksums():
    assert set(checksums(ASSET_DIR)) == set(SHA256)
    assert verify() == ASSET_DIR


def test_bundled_model_is_small_and_pixel_space():
    weights = sum(p.stat().st_size for p in ASSET_DIR.rglob("*.msgpack"))
    assert weights <= 15e6
    index = json.loads((ASSET_DIR / "model_index.json").read_text())
    assert "vae" not in index and not (ASSET_DIR / "vae").exists()
    unet = json.loads((ASSET_DIR / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["sample_size"]) == (3, 32)


def test_damage_is_reported(tmp_path):
    with pytest.raises(UserError, match="damaged"):
        verify(ASSET_DIR, {**SHA256, "model_index.json": "0" * 64})
    with pytest.raises(UserError, match="missing"):
        verify(tmp_path)


def test_bundled_weights_load():
    from transformers import CLIPTokenizer

    from jaxsteer.shapes.model import load
    pipe = load(ASSET_DIR)
    assert pipe.unet.config.cross_attention_dim == 128 and pipe.image_size == 32
    assert pipe.text.config.hidden_size == 128
    tok = CLIPTokenizer.from_pretrained(str(ASSET_DIR / "tokenizer"))
    assert tok.model_max_length == 16


def test_export_of_the_bundled_weights_rewrites_its_files(tmp_path):
    """`export` writes, without diffusers or transformers, the bytes their Flax classes wrote."""
    from jaxsteer.shapes.model import ShapesModelConfig, export, load
    saved = json.loads((ASSET_DIR / "training.json").read_text())
    out = export(tmp_path / "shapes", ShapesModelConfig(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in saved["model"].items()}),
        load(ASSET_DIR).params, info={k: v for k, v in saved.items() if k != "model"})
    written = checksums(out)
    assert set(written) == set(SHA256) - {"evaluation.json"}  # `evaluate` writes that one
    assert {name for name in written if written[name] != SHA256[name]} == set()


def test_a_missing_student_says_how_to_make_it():
    from jaxsteer.models import bundled, load
    from jaxsteer.shapes.student_checksums import SHA256 as STUDENT
    if STUDENT:
        pytest.skip("a distilled student is installed")
    for call in (lambda: bundled.folder("shapes-student"), lambda: load("shapes-student")):
        with pytest.raises(UserError, match="gpu_distill.sh.*install-student"):
            call()
    assert bundled.PRESETS["shapes-student"] == {"steps": 4, "guidance": 0.0, "scheduler": "ddim"}


def test_an_installed_student_ships_its_unet_and_loads_with_its_teachers_encoder(
        micro_shapes, tmp_path, monkeypatch):
    """install-student keeps only what differs from the teacher; the bundled loader puts the
    teacher's text encoder back beside the student's UNet, and checks both."""
    import jax
    import numpy as np

    from jaxsteer.distill.run import export_student
    from jaxsteer.models import bundled
    from jaxsteer.shapes import student_checksums
    from jaxsteer.shapes.assets import install_student
    from jaxsteer.shapes.model import load

    unet = jax.tree.map(lambda a: np.asarray(a) + 0.01, load(micro_shapes).params["unet"])
    sampler = {"steps": 2, "guidance": 0.0, "scheduler": "ddim", "timesteps": [999, 499]}
    student = export_student(micro_shapes, tmp_path / "student", unet, "float16",
                             {"sampler": sampler})
    assets = tmp_path / "assets"
    shutil.copytree(micro_shapes, assets / "micro")
    sums = install_student(student, assets / "shapes-student", micro_shapes, tmp_path / "s.py")
    assert not any(name.startswith(("text_encoder/", "tokenizer/")) for name in sums)
    assert {"unet/diffusion_flax_model.msgpack", "scheduler/scheduler_config.json"} <= set(sums)
    assert '"unet/diffusion_flax_model.msgpack"' in (tmp_path / "s.py").read_text()

    monkeypatch.setattr(bundled, "ASSETS", assets)
    monkeypatch.setattr(bundled, "STUDENTS", {"shapes-student": "micro"})
    monkeypatch.setattr(student_checksums, "SHA256", sums)
    got = bundled.load("shapes-student", dtype="float32")
    assert got.info["model"] == "shapes-student" and got.info["teacher"] == "micro"
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.float16(b)), got.params["unet"],
                 unet)
    jax.tree.map(np.testing.assert_array_equal, got.params["text_encoder"],
                 load(micro_shapes).params["text_encoder"])
    assert bundled._student_sampler("shapes-student") == {"steps": 2, "guidance": 0.0,
                                                          "scheduler": "ddim"}
    assert bundled.preset_bundle("shapes-turbo", "micro", got) is got

    (assets / "shapes-student" / "unet" / "config.json").write_text("{}")
    with pytest.raises(UserError, match="damaged"):
        bundled.load("shapes-student")
    other = tmp_path / "other"
    shutil.copytree(student, other)
    (other / "tokenizer" / "vocab.json").write_text("{}")
    with pytest.raises(UserError, match="does not share"):
        install_student(other, assets / "x", micro_shapes, tmp_path / "x.py")
