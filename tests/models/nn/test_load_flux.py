"""`jaxsteer.models.nn.load_flux`: the helpers of the torch-free Flux loader (the loading itself
is tests/models/nn/test_flux_torch_fixtures.py's)."""

import numpy as np
import pytest

from jaxsteer.models.nn.load_flux import flux_vae_config, t5_state

VAE = {"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 16,
       "block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8,
       "down_block_types": ["DownEncoderBlock2D"] * 2,
       "up_block_types": ["UpDecoderBlock2D"] * 2, "scaling_factor": 0.3611}


def test_the_tied_embedding_is_kept_once_as_shared():
    e, s = np.ones((3, 2)), np.zeros((3, 2))
    only_tied = {"encoder.embed_tokens.weight": e, "encoder.final_layer_norm.weight": s[0]}
    got = t5_state(only_tied)
    assert set(got) == {"shared.weight", "encoder.final_layer_norm.weight"}
    assert got["shared.weight"] is e
    assert "encoder.embed_tokens.weight" in only_tied           # the caller's dict is untouched
    both = t5_state({"shared.weight": s, "encoder.embed_tokens.weight": e})
    assert set(both) == {"shared.weight"} and both["shared.weight"] is s  # shared wins
    assert t5_state({"shared.weight": s}) == {"shared.weight": s}


@pytest.mark.parametrize("shift,want", [(0.1159, 0.1159), (None, 0.0), (0, 0.0)])
def test_the_vae_shift_factor_goes_to_the_adapter_not_the_module(shift, want):
    cfg = dict(VAE) if shift is None else {**VAE, "shift_factor": shift}
    vcfg, scaling, got = flux_vae_config(cfg)
    assert got == want and isinstance(got, float)
    assert scaling == pytest.approx(0.3611) and vcfg.scaling_factor == pytest.approx(0.3611)
    assert vcfg.latent_channels == 16                          # the rest is read as given
