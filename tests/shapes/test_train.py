"""train-shapes end to end on a tiny model: the loss falls, the folder loads, a run resumes.

One training run (one compile of the train step, one of the sampler) is shared by every test;
XLA's optimisations are off for this module because CPU compiles of even a tiny UNet take
20-50 s with them on.
"""

import dataclasses
import json
from pathlib import Path

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import CLIPTokenizer

from jaxsteer.config import parse
from jaxsteer.errors import UserError
from jaxsteer.shapes.model import ShapesModelConfig
from jaxsteer.shapes.train import OptimConfig, TrainShapesRun, run

TINY = ShapesModelConfig(image_size=16, channels=(32, 32), attention_levels=(1,), heads=2,
                         text_width=32, text_layers=1, text_heads=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    out = tmp_path_factory.mktemp("shapes") / "model"
    cfg = TrainShapesRun(out=out, model=TINY, optim=OptimConfig(lr=2e-3, warmup=1, ema=0.9),
                         steps=24, batch=8, log_every=1, checkpoint_every=8, progress=False)
    yield cfg, run(cfg)
    jax.config.update("jax_disable_most_optimizations", before)


def test_loss_goes_down(trained):
    _, result = trained
    losses = np.array([loss for _, loss in result["losses"]])
    assert len(losses) == 24 and np.isfinite(losses).all()
    assert losses[-6:].mean() < 0.6 * losses[:3].mean()


def test_folder_has_the_pipeline_layout(trained):
    cfg, _ = trained
    index = json.loads((cfg.out / "model_index.json").read_text())
    assert "vae" not in index and index["unet"][1] == "FlaxUNet2DConditionModel"
    unet = json.loads((cfg.out / "unet" / "config.json").read_text())
    assert (unet["in_channels"], unet["out_channels"], unet["sample_size"]) == (3, 3, 16)
    text = json.loads((cfg.out / "text_encoder" / "config.json").read_text())
    assert text["hidden_size"] == 32 and text["max_position_embeddings"] == 16
    tok = CLIPTokenizer.from_pretrained(str(cfg.out / "tokenizer"))
    assert len(tok("a small red circle on the left")["input_ids"]) == 9
    sched = json.loads((cfg.out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == "epsilon" and sched["num_train_timesteps"] == 1000
    assert json.loads((cfg.out / "training.json").read_text())["step"] == 24


def test_export_then_load_computes_what_training_computed(trained):
    """train -> export -> jaxsteer.models.load: the weights come back as exported (the UNet in
    float16), and the `sd` adapter's text encoder and UNet give the training modules' outputs."""
    from jaxsteer.models import load
    from jaxsteer.shapes import model as shapes_model

    cfg, _ = trained
    saved = flax.serialization.msgpack_restore((cfg.work / "state.msgpack").read_bytes())["ema"]
    want = {"unet": jax.tree.map(lambda x: np.asarray(x, np.float16).astype(np.float32),
                                 saved["unet"]),
            "text_encoder": saved["text_encoder"]}
    bundle = load(str(cfg.out), dtype="float32", attention="diffusers", remat_policy="none")
    got = jax.device_get(bundle.params)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(np.testing.assert_array_equal, got, want)

    m = bundle.model
    ids = np.asarray(m.tokenize("a small red circle on the left").ids_et)[None]  # [1, 1, t]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *m.latent_shape)).astype(np.float32)
    t = np.asarray([900, 250], np.int32)
    cond = m.encode_text(bundle.params, ids)
    emb = cond.emb
    out = m.predict(bundle.params, x, t, dataclasses.replace(
        cond, emb=jnp.broadcast_to(emb, (2, *emb.shape[1:]))))
    unet, text = shapes_model.build_modules(cfg.model)
    emb_train = shapes_model.encode_text(text, want["text_encoder"], ids[:, 0])
    out_train = unet.apply({"params": want["unet"]}, x, t,
                           jnp.broadcast_to(emb_train, (2, *emb_train.shape[1:])))
    np.testing.assert_array_equal(np.asarray(emb), np.asarray(emb_train))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out_train))


def test_folder_loads_with_diffusers_flax_classes(trained):
    """The folder is still the one diffusers 0.39 / transformers 4 read (the flax-reference
    extra; skipped without it)."""
    diffusers = pytest.importorskip("diffusers", minversion="0.39")
    if not hasattr(diffusers, "FlaxUNet2DConditionModel"):
        pytest.skip("diffusers without its Flax classes")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "FlaxCLIPTextModel"):
        pytest.skip("transformers without its Flax classes")
    cfg, _ = trained
    unet, params = diffusers.FlaxUNet2DConditionModel.from_pretrained(str(cfg.out),
                                                                      subfolder="unet")
    assert (unet.in_channels, unet.out_channels, unet.sample_size) == (3, 3, 16)
    assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype("float16")}
    text = transformers.FlaxCLIPTextModel.from_pretrained(str(cfg.out / "text_encoder"))
    assert text.config.hidden_size == 32 and text.config.max_position_embeddings == 16


def test_resume_restores_the_checkpoint(trained):
    cfg, _ = trained
    assert (cfg.work / "state.msgpack").exists()
    before = (cfg.out / "unet" / "diffusion_flax_model.msgpack").read_bytes()
    again = run(cfg)  # the checkpoint is at step 24 = cfg.steps: restore, no training
    assert again["step"] == 24 and len(again["losses"]) == 24
    assert (cfg.out / "unet" / "diffusion_flax_model.msgpack").read_bytes() == before


def test_evaluate_runs(trained):
    from jaxsteer.shapes.evaluate import evaluate
    cfg, _ = trained
    grid = cfg.out.parent / "grid.png"
    result = evaluate(cfg.out, n=6, n_heldout=2, steps=2, batch=8, grid=grid)
    assert result["w=3"]["train"]["n"] == 6 and result["w=3"]["heldout"]["n"] == 2
    assert set(result["w=3"]["train"]["coverage"]) == {"type", "hue", "x", "y", "size"}
    assert grid.exists()


def test_config_parses_flags(tmp_path):
    cfg = parse(TrainShapesRun, [str(tmp_path / "m"), "--steps", "5", "--model.channels", "32,64",
                                 "--model.attention-levels", "1", "--optim.compute-dtype",
                                 "bfloat16"], "jaxsteer train-shapes")
    assert cfg.out == Path(tmp_path / "m") and cfg.steps == 5
    assert cfg.model.channels == (32, 64) and cfg.optim.compute_dtype == "bfloat16"
    assert cfg.work == tmp_path / "m.train"
    with pytest.raises(UserError):
        parse(TrainShapesRun, ["m", "--model.channels", "48"], "jaxsteer train-shapes")


def test_resume_refuses_another_configuration(trained):
    cfg, _ = trained
    other = TrainShapesRun(out=cfg.out, model=TINY, optim=OptimConfig(lr=1e-4), steps=24, batch=8,
                           progress=False)
    with pytest.raises(UserError, match="another model"):
        run(other)


def test_init_from_starts_at_the_folder_weights(trained, tmp_path):
    from jaxsteer.shapes.model import load
    cfg, _ = trained
    # Step 0 of the warm-up has learning rate 0, so one step exports the loaded weights again.
    warm = dataclasses.replace(cfg, out=tmp_path / "warm", work_dir=None, init_from=cfg.out,
                               steps=1)
    run(warm)
    a, b = load(cfg.out).params, load(warm.out).params
    diffs = jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b))
    assert max(diffs) < 2e-3
    wrong = dataclasses.replace(warm, out=tmp_path / "wrong", model=dataclasses.replace(
        TINY, text_layers=2))
    with pytest.raises(UserError, match="do not fit --model"):
        run(wrong)
