"""`jaxsteer.shapes.model`: its configuration's checks and configs, the beta schedule by hand,
the host-side initialisation, and the refusal of a folder that is no pipeline."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.shapes.model import SCHEDULER, ShapesModelConfig, alphas_cumprod, load


def test_the_unet_config_mirrors_its_down_blocks():
    cfg = ShapesModelConfig(image_size=16, channels=(32, 64, 96), attention_levels=(0, 2))
    u = cfg.unet_config()
    assert u["down_block_types"] == ["CrossAttnDownBlock2D", "DownBlock2D",
                                     "CrossAttnDownBlock2D"]
    assert u["up_block_types"] == ["CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"]
    assert (u["sample_size"], u["in_channels"], u["cross_attention_dim"]) == (16, 3, 128)
    t = cfg.text_config()
    assert t["hidden_size"] == 128 and t["intermediate_size"] == 512
    assert t["pad_token_id"] == t["eos_token_id"] != t["bos_token_id"]


@pytest.mark.parametrize("kw,match", [
    (dict(channels=(32, 48)), "multiples of 32"),
    (dict(channels=(32, 64), attention_levels=(2,)), "must index the 2 levels"),
    (dict(image_size=30, channels=(32, 64, 128)), "divisible by 2 per downsampling level"),
])
def test_bad_architectures_are_refused(kw, match):
    with pytest.raises(UserError, match=match):
        ShapesModelConfig(**kw)


def test_alphas_cumprod_by_hand():
    lin = alphas_cumprod({"num_train_timesteps": 2, "beta_start": 0.1, "beta_end": 0.5,
                          "beta_schedule": "linear"})
    np.testing.assert_allclose(lin, [0.9, 0.45], rtol=1e-6)
    sq = alphas_cumprod({"num_train_timesteps": 2, "beta_start": 0.01, "beta_end": 0.25,
                         "beta_schedule": "scaled_linear"})
    np.testing.assert_allclose(sq, [0.99, 0.99 * 0.75], rtol=1e-6)
    full = alphas_cumprod()
    assert full.dtype == np.float32 and len(full) == SCHEDULER["num_train_timesteps"]
    assert full[-1] < 1e-4                             # the last step is (nearly) pure noise
    with pytest.raises(UserError, match="unsupported beta_schedule 'cosine'"):
        alphas_cumprod({**SCHEDULER, "beta_schedule": "cosine"})


def test_loading_a_folder_that_is_no_pipeline_is_refused(tmp_path):
    with pytest.raises(UserError, match="is not a shapes pipeline folder"):
        load(tmp_path)
