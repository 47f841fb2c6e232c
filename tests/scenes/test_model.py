"""The scenes pipeline folder without training: `export` of a micro model's weights is a latent
`sd` pipeline that `jaxsteer.models.load` reads back exactly (float16 files), and the adapter's
text encoder and VAE compute what the training modules compute (the UNet's numerics and
sampling: the slow end-to-end tests/scenes/test_train.py; eager UNet calls cost ~15 s here)."""

import json

import jax
import numpy as np
import pytest

from jaxsteer.scenes.model import ScenesModelConfig, build_modules, export, init_params
from jaxsteer.shapes.model import encode_text

MICRO = ScenesModelConfig(image_size=8, vae_channels=(8, 8), vae_groups=8, channels=(32,),
                          attention_levels=(0,), heads=1, text_width=16, text_layers=1,
                          text_heads=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    params = init_params(MICRO, 0)
    folder = export(tmp_path_factory.mktemp("scenes") / "micro", MICRO, params, 0.75)
    f16 = jax.tree.map(lambda x: np.asarray(x, np.float16).astype(np.float32), params)
    return folder, f16


def test_folder_is_a_latent_sd_pipeline(exported):
    from jaxsteer.models import detect_family
    folder, _ = exported
    index = json.loads((folder / "model_index.json").read_text())
    assert set(index) >= {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    assert detect_family(folder) == "sd"
    vae = json.loads((folder / "vae" / "config.json").read_text())
    assert vae["scaling_factor"] == 0.75 and vae["latent_channels"] == 4
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["sample_size"]) == (4, 4)


def test_load_gives_the_exported_weights_and_the_training_numerics(exported):
    from jaxsteer.models import load
    folder, want = exported
    bundle = load(str(folder), dtype="float32")
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(bundle.params), want)
    m = bundle.model
    assert m.latent_shape == (4, 4, 4) and m.scaling_factor == 0.75 and m.max_tokens == 24
    tokens = m.tokenize("a photo of a small red striped circle on grey")
    assert tokens.rows("circle") == (8,)   # bos + one token per word
    unet, text, vae = build_modules(MICRO)
    ids = np.asarray(tokens.ids_et)
    np.testing.assert_array_equal(np.asarray(m.encode_text(bundle.params, ids[None]).emb),
                                  np.asarray(encode_text(text, want["text_encoder"], ids)))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    z = m.encode_image(bundle.params, images)
    mean = vae.apply({"params": want["vae"]}, np.transpose(images, (0, 3, 1, 2)),
                     method="encode").mean
    np.testing.assert_allclose(np.asarray(z), 0.75 * np.asarray(mean), rtol=1e-6, atol=1e-6)
    assert m.decode(bundle.params, z).shape == (2, 8, 8, 3)
