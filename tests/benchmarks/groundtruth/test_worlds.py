"""`groundtruth.worlds`: the benchmark on either world without a model: the world interface, the
prompt lists of each split and their length / free-count correlation, the config's refusals and
the resume check across worlds (the end-to-end scenes run: test_scenes_run.py, slow)."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from scipy.stats import spearmanr

from jaxsteer.bench import select
from jaxsteer.benchmarks.groundtruth import (
    SCALES,
    GroundTruthConfig,
    complexity_prompts,
    section_prompts,
    stats,
    worlds,
)
from jaxsteer.benchmarks.groundtruth.resume import resumed
from jaxsteer.config import parse, to_dict
from jaxsteer.errors import UserError
from jaxsteer.scenes import captions as sc
from jaxsteer.scenes.prompts import draw_factors
from jaxsteer.scenes.render import render
from jaxsteer.shapes import captions as sh

SCENES, SHAPES = worlds.get("scenes"), worlds.get("shapes")


def test_the_world_interface():
    assert SHAPES.factors == sh.FACTORS and SHAPES.categorical == ("type",)
    assert SCENES.factors == sc.FACTORS and SCENES.categorical == sc.CATEGORICAL
    assert worlds.LEVELS == {"type": 3, "texture": 2, "background": 3, "dot": 2}
    for w, grammar in ((SHAPES, sh), (SCENES, sc)):
        for p in complexity_prompts("tune", 2, w.name):
            assert w.free_count(p) == grammar.free_count(p) == len(w.free(p))
            assert set(w.free(p)).isdisjoint(grammar.spec(p).fixed)
    # the differentiated word: the type word, or "shape" when the type is free (one token each)
    assert SHAPES.word("a red circle") == "circle" and SHAPES.word("a small shape") == "shape"
    assert SCENES.word("a photo of a small red striped circle on grey") == "circle"
    assert SCENES.word("here is a coloured shape and a dot") == "shape"
    # filler variants of one content share their split, not their seeds
    a, b = "a photo of a red circle", "an image of a red circle"
    assert sc.split_of(a) == sc.split_of(b) and SCENES.prompt_hash(a) != SCENES.prompt_hash(b)
    assert SHAPES.prompt_hash("a red circle") == sh.caption_hash("a red circle")
    with pytest.raises(UserError, match="world"):
        worlds.get("moon")
    with pytest.raises(UserError, match="scenes caption"):
        SCENES.spec("a red circle in the middle and a moon")
    # a shapes caption reads in the scenes grammar too, with the new factors free
    assert SCENES.free("a red circle in the middle") == ("size", "texture", "background", "dot")


def test_scenes_probe_and_fidelity_on_renders():
    """Known answer: renders of a caption's own factors obey it, on any background, and the
    usable-image rule reads the wash, not the (categorical) background."""
    prompt = "a photo of a small red striped circle on white and a dot"
    f = draw_factors(np.random.default_rng(0), [prompt] * 6)
    images = render(f, 64)
    m = SCENES.measure(images)
    assert SCENES.fidelity(prompt, images) == 1.0
    assert (m["background"] == 2).all() and (m[SCENES.wash] <= 0.3).all() and m["valid"].all()
    assert SCENES.fidelity("a shape", images) is None   # nothing fixed to obey


@pytest.mark.parametrize("split", ["tune", "test"])
def test_scenes_prompt_lists_hold_length_fixed(split):
    per_count = SCALES["gpu"]["per_count"]
    prompts = complexity_prompts(split, per_count, "scenes")
    counts = [SCENES.free_count(p) for p in prompts]
    n_counts = 9 if split == "test" else 8   # the all-free spec ("a shape") is a test caption
    assert len(set(prompts)) == len(prompts) == n_counts * per_count
    assert all(counts.count(n) == per_count for n in range(n_counts))
    assert all(sc.split_of(p) == split and not sc.is_heldout(p) for p in prompts)
    lengths = [len(p.split()) for p in prompts]
    assert spearmanr(lengths, counts).statistic == pytest.approx(0.0, abs=1e-12)
    # the confound this world removes: in shapes, length falls as free factors rise
    shapes = complexity_prompts(split, per_count)
    rho = spearmanr([len(p.split()) for p in shapes], [SHAPES.free_count(p) for p in shapes])
    assert rho.statistic < -0.85
    rec, div = section_prompts(split, per_count, SCALES["gpu"]["section_prompts"], "scenes")
    assert len(rec) == len(div) == SCALES["gpu"]["section_prompts"] and set(rec).isdisjoint(div)
    assert set(rec) | set(div) <= set(prompts)
    for p in rec + div:
        free = SCENES.free(p)
        assert len(free) in SCENES.section_counts and set(free) & set(stats.CONTINUOUS)
    assert {SCENES.free_count(p) for p in rec} == set(SCENES.section_counts)


def test_scenes_config_defaults_to_the_bundled_scenes_model(tmp_path):
    cfg = GroundTruthConfig(world="scenes", scale="ci").resolved()
    assert (cfg.model, cfg.turbo, cfg.preset) == ("scenes", "scenes-student", "shapes")
    for world, other in (("scenes", "shapes"), ("scenes", "shapes-student"), ("shapes", "scenes")):
        with pytest.raises(UserError, match=f"{other} is a bundled model of the "
                                            f"{other.split('-')[0]} world, not of {world}"):
            GroundTruthConfig(world=world, model=other)
    with pytest.raises(UserError, match="scenes caption"):
        GroundTruthConfig(world="scenes", model=str(tmp_path), prompts=("a circle", "a blob"))
    with pytest.raises(UserError, match="student of shapes"):
        GroundTruthConfig(world="scenes", model=str(tmp_path), turbo="shapes-student")
    cfg = GroundTruthConfig(world="scenes", model=str(tmp_path), scale="ci").resolved()
    assert (cfg.turbo, cfg.preset) == ("shapes-turbo", "shapes")  # the shared-noise stand-in
    assert cfg.prompts == complexity_prompts("test", 1, "scenes")
    assert to_dict(cfg)["world"] == "scenes"
    shapes = to_dict(GroundTruthConfig(scale="ci").resolved())
    assert (shapes["world"], shapes["model"], shapes["preset"]) == ("shapes", "shapes", "shapes")
    cls, _, rest, prog = select(["groundtruth", "--groundtruth.world", "scenes",
                                 "--groundtruth.model", str(tmp_path)])
    assert parse(cls, rest, prog).groundtruth.resolved().world == "scenes"
    cls, _, rest, prog = select(["groundtruth", "--groundtruth.world", "scenes"])
    assert parse(cls, rest, prog).groundtruth.resolved().model == "scenes"


def _partial(cfg: GroundTruthConfig, drop: tuple[str, ...] = ()) -> dict:
    config = {k: v for k, v in to_dict(cfg).items() if k not in drop}
    return {"config": config, "model_info": {"model": cfg.model}, "jax": jax.__version__,
            "partial": True, "recovery": {}, "diversity": {},
            "complexity": {"prompts": [{"prompt": cfg.prompts[0]}]}, "seconds": {}}


def test_resume_across_worlds(tmp_path):
    out = tmp_path / "gt.json"
    shapes = GroundTruthConfig(model=str(tmp_path), scale="ci", out=out).resolved()
    scenes = GroundTruthConfig(world="scenes", model=str(tmp_path), scale="ci",
                               out=out).resolved()

    def fresh(cfg):
        return {**_partial(cfg), "partial": False, "complexity": {"prompts": []}}
    # a file from before `world` existed is a shapes run: shapes resumes it, scenes refuses it
    out.write_text(json.dumps(_partial(shapes, drop=("world",))))
    assert resumed(shapes, fresh(shapes))["complexity"]["prompts"] == [
        {"prompt": shapes.prompts[0]}]
    with pytest.raises(UserError, match="unfinished run of the shapes world, not scenes"):
        resumed(scenes, fresh(scenes))
    out.write_text(json.dumps(_partial(scenes)))
    assert resumed(scenes, fresh(scenes))["complexity"]["prompts"][0]["prompt"] \
        == scenes.prompts[0]
    with pytest.raises(UserError, match="of the scenes world, not shapes"):
        resumed(shapes, fresh(shapes))
    # from before parallel analysis's interval: resumed with it off, refused with it on
    old = _partial(shapes)
    del old["config"]["complexity"]["n_boot_pa"]
    out.write_text(json.dumps(old))
    assert resumed(shapes, fresh(shapes))["complexity"]["prompts"] == [
        {"prompt": shapes.prompts[0]}]
    on = dataclasses.replace(shapes, complexity=dataclasses.replace(shapes.complexity,
                                                                    n_boot_pa=5))
    with pytest.raises(UserError, match="other settings"):
        resumed(on, fresh(on))


def test_categorical_scenes_factors_in_the_statistics():
    assert stats.spread("texture", [0, 1] * 4) == pytest.approx(1.0)
    assert stats.spread("background", [0, 1, 2] * 3) == pytest.approx(1.0)
    assert stats.spread("dot", [1, 1, 1]) == 0.0
    assert stats.spread("type", [0, 1, 2] * 5) == pytest.approx(1.0)   # unchanged
    # a categorical factor scores the share of steered samples that changed level
    out = stats.recovery_scores({"dot": np.array([0, 1, 0, 0]), "x": np.arange(4.0)},
                                np.ones(4, bool), np.array([0.0, 1.0, 2.0, 3.0]),
                                np.zeros(4, int), ("dot", "x"))
    assert out["dot"]["score"] == pytest.approx(1 / 3) and "rho" not in out["dot"]
    assert out["x"]["score"] == pytest.approx(1.0)


def test_the_headline_names_its_world(tmp_path):
    cfg = GroundTruthConfig(world="scenes", model=str(tmp_path), scale="ci").resolved()
    result = {"summary": {}, "complexity": {"ranking": {}}, "timesteps": {"shapes": [500]}}
    assert stats.headline(result, cfg)["method"]["world"] == "scenes"


def test_the_scenes_world_uses_its_distilled_student_once_installed(monkeypatch):
    from jaxsteer.models import bundled
    monkeypatch.setattr(bundled, "installed", lambda name: False)
    assert GroundTruthConfig(world="scenes", scale="ci").resolved().turbo == "shapes-turbo"
    monkeypatch.setattr(bundled, "installed", lambda name: name == "scenes-student")
    cfg = GroundTruthConfig(world="scenes", scale="ci").resolved()
    assert (cfg.model, cfg.turbo) == ("scenes", "scenes-student")
    assert GroundTruthConfig(scale="ci").resolved().turbo == "shapes-turbo"   # shapes': none
    with pytest.raises(UserError, match="student of scenes"):
        GroundTruthConfig(turbo="scenes-student")
