"""Damaged or missing weights and unknown hub ids: one clear line naming what is wrong."""

import shutil
from pathlib import Path

import pytest

from jaxsteer.errors import UserError
from jaxsteer.models import load, weights


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_header(path):
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    data[10] ^= 0x55
    path.write_bytes(bytes(data))


def cut_header(path):
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")  # header cut short


SHAPES = Path(__file__).resolve().parents[2] / "jaxsteer" / "assets" / "shapes"


# The bundled shapes model holds Flax msgpack; the tiny pipeline PyTorch-layout safetensors.
@pytest.mark.parametrize("source, file, damage", [
    ("shapes", "unet/diffusion_flax_model.msgpack", truncate),
    ("shapes", "text_encoder/flax_model.msgpack", flip_header),
    ("shapes", "text_encoder/flax_model.msgpack", truncate),
    ("tiny", "unet/diffusion_pytorch_model.safetensors", cut_header),
    ("tiny", "text_encoder/model.safetensors", truncate),
], ids=["truncated-msgpack", "flipped-msgpack", "truncated-encoder", "cut-safetensors",
        "truncated-safetensors"])
def test_damaged_weights_are_one_line_naming_the_file(tiny_folder, tmp_path, source, file,
                                                      damage):
    folder = tmp_path / "model"
    shutil.copytree(SHAPES if source == "shapes" else tiny_folder, folder)
    damage(folder / file)
    with pytest.raises(UserError) as e:
        load(str(folder))
    text = str(e.value)
    assert f"cannot read the weights in {folder / file}" in text and "\n" not in text


def test_damaged_config_json_is_named(tiny_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_folder, folder)
    (folder / "unet" / "config.json").write_text("{")
    with pytest.raises(UserError, match="config.json is damaged"):
        load(str(folder))


def test_an_unknown_hub_id_is_a_whole_sentence(monkeypatch):
    import huggingface_hub

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file, "
                      "couldn't find it in the cached files and it looks like nobody/x is not "
                      "the path to a directory containing a file. Please check your internet "
                      "connection and try again, or see the docs about offline mode " * 2)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(UserError) as e:
        weights.resolve_folder("nobody/no-such-model")
    text = str(e.value)
    assert text.endswith(".") and text.count("(") == text.count(")")
    assert "could not get model 'nobody/no-such-model'" in text and "local pipeline folder" in text


def test_hub_download_takes_the_diffusers_folders_not_the_single_file_checkpoints():
    """FLUX.1-schnell's file list (as the hub lists it): the 24 GB flux1-schnell.safetensors
    and ae.safetensors at the top level are left out; every component folder's file is kept."""
    from huggingface_hub.utils import filter_repo_objects

    top = ["flux1-schnell.safetensors", "ae.safetensors", "README.md", "schnell_grid.jpeg",
           "model_index.json"]
    parts = ["scheduler/scheduler_config.json", "text_encoder/config.json",
             "text_encoder/model.safetensors", "text_encoder_2/config.json",
             "text_encoder_2/model-00001-of-00002.safetensors",
             "text_encoder_2/model.safetensors.index.json", "tokenizer/vocab.json",
             "tokenizer/merges.txt", "tokenizer_2/spiece.model", "tokenizer_2/tokenizer.json",
             "transformer/config.json",
             "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
             "transformer/diffusion_pytorch_model.safetensors.index.json", "vae/config.json",
             "vae/diffusion_pytorch_model.safetensors", "unet/diffusion_flax_model.msgpack"]
    kept = set(filter_repo_objects(top + parts, allow_patterns=weights._ALLOW))
    assert kept == {"model_index.json", *parts}
    pickled = set(filter_repo_objects(["unet/diffusion_pytorch_model.bin", "model.bin"],
                                      allow_patterns=weights._ALLOW_PICKLE))
    assert pickled == {"unet/diffusion_pytorch_model.bin"}
