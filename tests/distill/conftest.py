"""The scenes world's micro teacher (conftest's ``micro_shapes`` is the shapes one)."""

import pytest


@pytest.fixture(scope="session")
def micro_scenes(tmp_path_factory):
    """The smallest scenes pipeline (8 x 8 images, a VAE of one level: 8 x 8 x 4 latents, one
    UNet level without attention), random weights: the CLI smoke run's train-scenes size."""
    from jaxsteer.scenes.model import ScenesModelConfig, export, init_params
    cfg = ScenesModelConfig(image_size=8, vae_channels=(8,), vae_groups=8, channels=(32,),
                            attention_levels=(), heads=1, text_width=16, text_layers=1,
                            text_heads=1)
    return export(tmp_path_factory.mktemp("micro") / "scenes", cfg, init_params(cfg, 0), 1.0,
                  "float32")
