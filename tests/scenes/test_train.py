"""The scenes model end to end at micro scale: both phases' losses fall, a run stopped inside
each phase resumes to the uninterrupted run's state bit for bit, more steps re-export, the
exported folder is a latent `sd` pipeline that `jaxsteer.models.load` reads with the trained
weights, samples through `jaxsteer.sampling`, and gives pair gradients through the public
`Collector`.

One uninterrupted run (16 x 16 images, 8 x 8 latents, one UNet level) is shared by the tests. It
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


def _cfg(out, **kw) -> TrainScenesRun:
    return TrainScenesRun(**{**dict(out=out, model=MICRO, vae_optim=OPT, optim=OPT, vae_steps=30,
                                    steps=30, vae_batch=8, batch=8, log_every=1,
                                    checkpoint_every=10, eval_n=2, eval_steps=2), **kw})


def _tree(path):
    return flax.serialization.msgpack_restore(path.read_bytes())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted run."""
    cfg = _cfg(tmp_path_factory.mktemp("scenes") / "model")
    return cfg, run(cfg, log=lambda s: None)


def test_losses_fall_and_a_run_stopped_mid_phase_resumes_exactly(trained, tmp_path):
    cfg, done = trained
    assert done["done"] and (done["vae_step"], done["unet_step"]) == (30, 30)
    assert done["exported"] == [30, 30] and "quality" in done
    for phase in ("vae", "unet"):
        losses = np.array([r["loss"] for r in done["losses"][phase]])
        assert len(losses) == 30 and np.isfinite(losses).all()
        assert losses[-5:].mean() < 0.8 * losses[:3].mean(), phase
    assert 0.0 < done["scaling_factor"] < 1e3
    assert not (cfg.work / "vae.msgpack").exists()   # the finished VAE keeps its EMA only
    # the same settings, stopped inside the VAE phase, then inside the UNet phase
    other = _cfg(tmp_path / "model")
    first = run(other, log=lambda s: None, stop=lambda phase, step: (phase, step) == ("vae", 13))
    assert (first["vae_step"], first["unet_step"], first["done"]) == (13, 0, False)
    second = run(other, log=lambda s: None, stop=lambda phase, step: phase == "unet" and step == 17)
    assert (second["vae_step"], second["unet_step"], second["done"]) == (30, 17, False)
    again = run(other, log=lambda s: None)
    assert again["losses"] == done["losses"] and again["scaling_factor"] == done["scaling_factor"]
    for name in ("unet.msgpack", "vae_ema.msgpack"):   # params, EMA and Adam state, bit for bit
        jax.tree.map(np.testing.assert_array_equal, _tree(other.work / name),
                     _tree(cfg.work / name))
    assert run(other, log=lambda s: None)["exported"] == [30, 30]   # finished: nothing to do


def test_more_steps_re_export_and_the_vae_is_final(tmp_path):
    cfg = _cfg(tmp_path / "model", steps=3, vae_steps=3, eval_n=0)
    run(cfg, log=lambda s: None)
    weights = cfg.out / "unet" / "diffusion_flax_model.msgpack"
    before = weights.read_bytes()
    more = run(_cfg(cfg.out, steps=5, vae_steps=3, eval_n=2), log=lambda s: None)
    assert more["exported"] == [3, 5] and more["unet_step"] == 5 and "quality" in more
    assert weights.read_bytes() != before
    record = json.loads((cfg.out / "training.json").read_text())["progress"]
    assert record["unet_step"] == 5 and record["done"]   # the export records a finished run
    # with a deadline, the call that trains leaves the table to the next call
    timed = _cfg(cfg.out, steps=6, vae_steps=3, deadline_s=1e4, margin_s=0.0)
    first = run(timed, log=lambda s: None)
    assert first["exported"] == [3, 6] and first["done"] and "quality" not in first
    assert "quality" in run(timed, log=lambda s: None)
    with pytest.raises(UserError, match="--vae-steps 4: the VAE .* is final at 3 steps"):
        run(_cfg(cfg.out, steps=6, vae_steps=4), log=lambda s: None)
    with pytest.raises(UserError, match="another model"):
        run(_cfg(cfg.out, steps=6, vae_steps=3, batch=4), log=lambda s: None)
    (cfg.work / "vae_ema.msgpack").rename(cfg.work / "moved")
    with pytest.raises(UserError, match="missing but .* says the VAE phase is done"):
        run(_cfg(cfg.out, steps=6, vae_steps=3), log=lambda s: None)


def test_folder_loads_as_a_latent_sd_model_with_the_trained_weights(trained):
    from jaxsteer.models import detect_family, load
    cfg, done = trained
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
    assert len(rows) == 9 and rows[0]["n"] == 2 and "all_fixed" in rows[0]
    assert (cfg.out / "quality.md").read_text().startswith("| caption | valid | type")


def test_public_collector_gives_pair_gradients(trained):
    from jaxsteer import sharding
    from jaxsteer.collect import Collector, draw_pairs
    from jaxsteer.models import load
    from jaxsteer.sampling import SamplerConfig
    from jaxsteer.scenes.evaluate import sample
    cfg, _ = trained
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
