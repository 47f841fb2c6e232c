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
    from diffusers import FlaxUNet2DConditionModel
    from transformers import CLIPTokenizer, FlaxCLIPTextModel
    unet, _params = FlaxUNet2DConditionModel.from_pretrained(str(ASSET_DIR), subfolder="unet")
    assert unet.cross_attention_dim == 128
    text = FlaxCLIPTextModel.from_pretrained(str(ASSET_DIR / "text_encoder"))
    assert text.config.hidden_size == 128
    tok = CLIPTokenizer.from_pretrained(str(ASSET_DIR / "tokenizer"))
    assert tok.model_max_length == 16
