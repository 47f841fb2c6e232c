"""The scenes model end to end at micro scale: both phases' losses fall, a run stopped at its
deadline resumes, the exported folder is a latent `sd` pipeline that `jaxsteer.models.load`
reads with the trained weights, samples through `jaxsteer.sampling`, and gives pair gradients
through the public `Collector`.

One training run (16 x 16 images, 8 x 8 latents, one UNet level) is shared by every test. It
compiles four programs (VAE step, UNet step, sampler, gradient kernel): ~50 s on a CPU, so the
module is slow (not in CI); tests/scenes/test_model.py checks the export without training.
"""

import json

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.scenes.model import ScenesModelConfig
from jaxsteer.scenes.train import OptimConfig, TrainScenesRun, run

pytestmark = pytest.mark.slow

MICRO = ScenesModelConfig(image_size=16, vae_channels=(8, 8), vae_groups=8, channels=(32,),
                          attention_levels=(0,), heads=1, text_width=16, text_layers=1,
                          text_heads=1)
OPT = OptimConfig(lr=1e-3, warmup=1, ema=0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes") / "model"
    cfg = TrainScenesRun(out=out, model=MICRO, vae_optim=OPT, optim=OPT, vae_steps=30, steps=30,
                         vae_batch=8, batch=8, log_every=1, checkpoint_every=10, eval_n=2,
                         eval_steps=2)
    stopped = run(TrainScenesRun(**{**cfg.__dict__, "deadline_s": 1e-3, "margin_s": 0.0}),
                  log=lambda s: None)
    return cfg, stopped, run(cfg, log=lambda s: None)


def test_losses_fall_and_a_stopped_run_resumes(trained):
    cfg, stopped, done = trained
    assert stopped["vae_step"] == 0 and not stopped.get("done")   # the deadline had passed
    assert done["done"] and (done["vae_step"], done["unet_step"]) == (30, 30)
    for phase in ("vae", "unet"):
        losses = np.array([r["loss"] for r in done["losses"][phase]])
        assert len(losses) == 30 and np.isfinite(losses).all()
        assert losses[-5:].mean() < 0.8 * losses[:3].mean(), phase
    assert 0.0 < done["scaling_factor"] < 1e3
    again = run(cfg, log=lambda s: None)   # finished: restores, exports the same weights
    assert again["unet_step"] == 30 and len(again["losses"]["unet"]) == 30
    with pytest.raises(UserError, match="another model"):
        run(TrainScenesRun(**{**cfg.__dict__, "batch": 4}), log=lambda s: None)


def test_folder_loads_as_a_latent_sd_model_with_the_trained_weights(trained):
    from jaxsteer.models import detect_family, load
    cfg, _, done = trained
    index = json.loads((cfg.out / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "FlaxAutoencoderKL"] and detect_family(cfg.out) == "sd"
    bundle = load(str(cfg.out), dtype="float32")
    m = bundle.model
    assert m.vae is not None and m.latent_shape == (4, 8, 8)
    assert m.scaling_factor == pytest.approx(done["scaling_factor"])
    saved = flax.serialization.msgpack_restore((cfg.work / "unet.msgpack").read_bytes())["ema"]
    f16 = lambda t: jax.tree.map(lambda x: np.asarray(x, np.float16).astype(np.float32), t)  # noqa: E731
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(bundle.params["unet"]),
                 f16(saved["unet"]))
    ids = np.asarray(m.tokenize("a small red striped circle on grey").ids_et)[None]
    assert ids.shape[-1] == 24
    images = np.zeros((2, 16, 16, 3), np.float32)
    z = m.encode_image(bundle.params, images)
    assert z.shape == (2, 4, 8, 8) and m.decode(bundle.params, z).shape == (2, 16, 16, 3)
    rows = json.loads((cfg.out / "quality.json").read_text())
    assert len(rows) == 10 and rows[0]["n"] == 2 and "all_fixed" in rows[0]
    assert (cfg.out / "quality.md").read_text().startswith("| caption | valid | type")


def test_public_collector_gives_pair_gradients(trained):
    from jaxsteer import sharding
    from jaxsteer.collect import Collector, draw_pairs
    from jaxsteer.models import load
    from jaxsteer.sampling import SamplerConfig
    from jaxsteer.scenes.evaluate import sample
    cfg, _, _ = trained
    bundle = load(str(cfg.out), dtype="float32")
    images = sample(bundle, "a striped shape on white", 4, jax.random.key(0), 2, 2.0)
    assert images.shape == (4, 16, 16, 3) and np.isfinite(images).all()
    col = Collector(bundle, SamplerConfig(steps=2, guidance=2.0),
                    sharding.make_mesh(devices=jax.devices()[:1]))
    inputs = col.prepare("a striped shape on white", "shape")
    pool = np.asarray(jax.jit(bundle.model.encode_image)(bundle.params, jnp.asarray(images)))
    grads = col.gradients(inputs, np.arange(4), jax.random.key(1), pool, draw_pairs(0, 4, 4),
                          batch=4)
    assert grads.shape == (4, 1, 16) and np.isfinite(grads).all() and np.abs(grads).max() > 0
