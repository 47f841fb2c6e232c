"""distill-shapes: the export and the checkpoint without training, then (slow) one tiny run
end to end: the fake score learns, the export is the trained student and loads through
`jaxsteer.models.load`, a run resumes. The same for the scenes world's latent micro teacher
(conftest): its export keeps the VAE; its run end to end is slow too.

The CI runs the training step once, in the CLI smoke run (tests/test_cli_contract.py: a 1-step
student of the micro random teacher of conftest, the settings below); compiling it takes 10-20 s
on 2 cores, so the end-to-end tests here, which compile it again in their own worker, are slow.
"""

import dataclasses
import json

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.distill.dmd import DMDConfig, StudentConfig
from jaxsteer.distill.run import DistillRun, export_student, run
from jaxsteer.errors import UserError

# The CLI smoke run's settings (tests/test_cli_contract.py): the same compiled step.
STUDENT, BATCH = StudentConfig(steps=1), 4


def test_the_export_is_a_pipeline_the_library_loads(micro_shapes, tmp_path):
    from jaxsteer.models import load
    from jaxsteer.shapes.model import load as load_shapes
    unet = jax.tree.map(lambda a: np.asarray(a) - 0.02, load_shapes(micro_shapes).params["unet"])
    sampler = {"steps": 2, "guidance": 0.0, "scheduler": "ddim", "timesteps": [999, 499]}
    out = export_student(micro_shapes, tmp_path / "student", unet, "float16",
                         {"sampler": sampler})
    bundle, teacher = load(str(out), dtype="float32"), load(str(micro_shapes), dtype="float32")
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.float16(b).astype(np.float32)),
                 jax.device_get(bundle.params["unet"]), unet)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(bundle.params["text_encoder"]),
                 jax.device_get(teacher.params["text_encoder"]))
    assert bundle.model == teacher.model   # same definition: the compiled programs are shared
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["timesteps"] == [999, 499] and sched["prediction_type"] == "epsilon"
    assert json.loads((out / "training.json").read_text())["sampler"] == sampler
    assert oct((out / "unet" / "diffusion_flax_model.msgpack").stat().st_mode)[-3:] == "644"


def test_a_checkpoint_restores_and_refuses_another_run(micro_shapes, tmp_path):
    """The state round-trips through its atomic checkpoint; a run with another objective, batch
    or teacher is refused instead of mixing (no training: only the jitted init runs)."""
    from jaxsteer.distill.dmd import make_distill_step
    from jaxsteer.distill.run import _checkpoint, _restore, load_teacher
    cfg = DistillRun(out=tmp_path / "s", teacher=micro_shapes, student=STUDENT,
                           batch=BATCH)
    bundle, model = load_teacher(micro_shapes, cfg)
    _, init = make_distill_step(model, cfg.student, cfg.dmd.static())
    unet = bundle.params["unet"]
    state = init(jax.tree.map(jnp.array, unet), jax.tree.map(lambda a: a + 1.0, unet))
    state = state.replace(step=jnp.int32(7))
    assert _restore(cfg.work, state, cfg) is None
    cfg.work.mkdir()
    _checkpoint(cfg.work, state, cfg, [{"step": 7}])
    back, log = _restore(cfg.work, jax.tree.map(jnp.zeros_like, state), cfg)
    assert int(back.step) == 7 and log == [{"step": 7}]
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(back), jax.device_get(state))
    for other in (dataclasses.replace(cfg, batch=8),
                  dataclasses.replace(cfg, dmd=DMDConfig(real_guidance=5.0))):
        with pytest.raises(UserError, match="another teacher"):
            _restore(cfg.work, state, other)
    assert _restore(cfg.work, state, dataclasses.replace(cfg, steps=99, time_limit_s=5.0))


@pytest.fixture(scope="module")
def distilled(micro_shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "student"
    cfg = DistillRun(out=out, teacher=micro_shapes, student=STUDENT, batch=BATCH, steps=4,
                           dmd=DMDConfig(lr=1e-3, fake_lr=3e-3, warmup=1), log_every=1,
                           checkpoint_every=2, progress=False)
    first = run(cfg)
    longer = dataclasses.replace(cfg, steps=8)
    return longer, first, run(longer)   # the second run resumes the first's checkpoint


@pytest.mark.slow
def test_the_fake_score_learns_the_students_samples(distilled):
    _, first, result = distilled
    assert [e["step"] for e in result["log"]] == list(range(1, 9))
    assert result["log"][:4] == first["log"]   # resumed: the first run's log, then four more
    fake = np.array([e["fake"] for e in result["log"]])
    assert np.isfinite(fake).all() and fake[-3:].mean() < 0.9 * fake[:2].mean()
    assert all(np.isfinite(e["gap"]) and e["gap"] >= 0 for e in result["log"])


@pytest.mark.slow
def test_export_loads_and_is_the_trained_student(distilled, micro_shapes):
    from jaxsteer.models import load
    cfg, _, result = distilled
    saved = flax.serialization.msgpack_restore((cfg.work / "state.msgpack").read_bytes())
    assert int(saved["step"]) == 8
    bundle = load(str(cfg.out), dtype="float32")
    teacher = load(str(micro_shapes), dtype="float32")
    got = jax.device_get(bundle.params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.float16(b).astype(np.float32)),
                 got["unet"], saved["student"])
    jax.tree.map(np.testing.assert_array_equal, got["text_encoder"],
                 jax.device_get(teacher.params["text_encoder"]))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), got["unet"],
                                         jax.device_get(teacher.params["unet"])))
    assert max(moved) > 1e-3   # trained away from the teacher
    info = json.loads((cfg.out / "training.json").read_text())
    assert info["sampler"] == result["sampler"] == {"steps": 1, "guidance": 0.0,
                                                    "scheduler": "ddim", "timesteps": [999]}
    sched = json.loads((cfg.out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["timesteps"] == [999] and sched["prediction_type"] == "epsilon"


@pytest.mark.slow
def test_the_student_samples_through_the_library(distilled):
    from jaxsteer import sharding
    from jaxsteer.distill.collapse import Generator, factor_spreads
    from jaxsteer.models import load
    from jaxsteer.sampling import SamplerConfig
    cfg, _, _ = distilled
    gen = Generator(load(str(cfg.out), dtype="float32"), SamplerConfig(steps=1))
    images = gen.render("a red circle", jax.random.split(jax.random.key(0), 4),
                        sharding.local_mesh(1), 4)
    assert images.shape == (4, 8, 8, 3) and np.isfinite(images).all()
    assert set(factor_spreads("a red circle", images)["spread"]) == {"x", "y", "size"}
    assert gen.calls() == {"base": 0, "student": 1}


@pytest.mark.slow
def test_a_finished_run_reexports_and_another_run_is_refused(distilled):
    cfg, _, result = distilled
    before = (cfg.out / "unet" / "diffusion_flax_model.msgpack").read_bytes()
    again = run(cfg)   # the checkpoint is at cfg.steps: restore, export, no training
    assert again["step"] == 8 and again["log"] == result["log"]
    assert (cfg.out / "unet" / "diffusion_flax_model.msgpack").read_bytes() == before
    with pytest.raises(UserError, match="another teacher"):
        run(dataclasses.replace(cfg, dmd=DMDConfig(fake_updates=2)))


def test_bad_settings_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="not a pipeline folder"):
        run(DistillRun(out=tmp_path / "s", teacher=tmp_path / "none", progress=False))


# The scenes world: the teacher is a latent model, so the student keeps its VAE.


def test_a_scenes_export_carries_the_teachers_vae_and_loads_as_a_latent_model(micro_scenes,
                                                                              tmp_path):
    from jaxsteer.models import load
    teacher = load(str(micro_scenes), dtype="float32")
    unet = jax.tree.map(lambda a: np.asarray(a) + 0.01, jax.device_get(teacher.params["unet"]))
    sampler = {"steps": 1, "guidance": 0.0, "scheduler": "ddim", "timesteps": [999]}
    out = export_student(micro_scenes, tmp_path / "student", unet, "float32",
                         {"sampler": sampler, "world": "scenes"})
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "scheduler", "text_encoder", "tokenizer", "unet", "vae"]
    bundle = load(str(out), dtype="float32")
    assert bundle.model == teacher.model and bundle.model.latent_shape == (4, 8, 8)
    got = jax.device_get(bundle.params)
    jax.tree.map(np.testing.assert_array_equal, got["unet"], unet)
    jax.tree.map(np.testing.assert_array_equal, got["vae"], jax.device_get(teacher.params["vae"]))


def test_a_teacher_of_another_world_or_none_is_one_clear_error(micro_shapes, tmp_path):
    with pytest.raises(UserError, match="--world scenes: the teacher .* is a shapes model"):
        run(DistillRun(out=tmp_path / "s", teacher=str(micro_shapes), world="scenes",
                       progress=False))
    with pytest.raises(UserError, match="nor a bundled model \\(shapes, scenes\\)"):
        run(DistillRun(out=tmp_path / "s", teacher="scenez", progress=False))
    assert not (tmp_path / "s.train").exists()   # refused before anything was written


@pytest.mark.slow
def test_a_scenes_student_trains_resumes_and_samples_through_its_vae(micro_scenes, tmp_path):
    """The scenes world end to end (slow: its own compile of the step, ~20 s on 2 cores): a
    few steps on the micro latent teacher, a resumed run, an export that decodes to images the
    scenes probe reads."""
    from jaxsteer import sharding
    from jaxsteer.distill.collapse import Generator, factor_spreads
    from jaxsteer.models import load
    from jaxsteer.sampling import SamplerConfig
    cfg = DistillRun(out=tmp_path / "student", teacher=str(micro_scenes), student=STUDENT,
                     batch=BATCH, steps=2, dmd=DMDConfig(lr=1e-3, fake_lr=3e-3, warmup=1),
                     log_every=1, checkpoint_every=1, progress=False)
    first = run(cfg)
    result = run(dataclasses.replace(cfg, steps=3))
    assert first["world"] == result["world"] == "scenes"
    assert [e["step"] for e in result["log"]] == [1, 2, 3] and result["log"][:2] == first["log"]
    assert all(np.isfinite(e["fake"]) and np.isfinite(e["gap"]) for e in result["log"])
    info = json.loads((cfg.out / "training.json").read_text())
    assert info["world"] == "scenes" and info["step"] == 3
    gen = Generator(load(str(cfg.out), dtype="float32"), SamplerConfig(steps=1))
    prompt = "a picture of a sized magenta circle at the bottom right on grey and any dot"
    images = gen.render(prompt, jax.random.split(jax.random.key(0), 4), sharding.local_mesh(1), 4)
    assert images.shape == (4, 8, 8, 3) and np.isfinite(images).all()
    assert set(factor_spreads(prompt, images, world="scenes")["spread"]) == {
        "size", "texture", "dot"}
