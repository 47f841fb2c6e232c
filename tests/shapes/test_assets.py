"""The bundled shapes model: present, intact, small, and loadable by the library classes."""

import json

import pytest

from jaxsteer.errors import UserError
from jaxsteer.shapes.assets import ASSET_DIR, checksums, verify
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
