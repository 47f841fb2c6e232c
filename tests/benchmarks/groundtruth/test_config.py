"""`groundtruth.config`: the config's checks, and the scale presets filling what is not given
(from Python and from the CLI)."""

import pytest

from jaxsteer.bench import select
from jaxsteer.benchmarks.groundtruth import SCALES, GroundTruthConfig, complexity_prompts
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig
from jaxsteer.config import parse, to_dict
from jaxsteer.errors import UserError


def test_config_is_checked_before_anything_runs():
    with pytest.raises(UserError, match="shapes caption"):
        GroundTruthConfig(prompts=("a red circle", "a purple blob"))
    with pytest.raises(UserError, match="non-zero"):
        GroundTruthConfig(strengths=(0.0, 1.0))
    with pytest.raises(UserError, match="preset"):
        GroundTruthConfig(turbo="no-such-model")
    with pytest.raises(UserError, match="pairs"):
        GroundTruthConfig(pairs=4)


def test_scale_presets_fill_what_is_not_given():
    gpu = GroundTruthConfig(scale="gpu").resolved()
    assert gpu.pairs >= 4096 and gpu.pool >= 1024 and gpu.seeds >= 3
    assert gpu.convergence_pairs >= 16384 and {256, 1024, 4096} <= set(gpu.convergence_n)
    assert gpu.prompts == complexity_prompts("test", SCALES["gpu"]["per_count"])
    # Explicit values win, and the result's config records the resolved values.
    cfg = GroundTruthConfig(scale="gpu", pairs=5000, split="tune",
                            recovery_prompts=("a circle",)).resolved()
    assert (cfg.pairs, cfg.pool, cfg.recovery_prompts) == (5000, 1024, ("a circle",))
    assert cfg.prompts == complexity_prompts("tune", SCALES["gpu"]["per_count"])
    d = to_dict(cfg)
    assert d["pairs"] == 5000 and d["pool"] == 1024 and len(d["prompts"]) == len(cfg.prompts)
    ci = GroundTruthConfig(scale="ci").resolved()
    assert ci.pairs == SCALES["ci"]["pairs"] and len(ci.prompts) == 6
    assert len(ci.recovery_prompts) == len(ci.diversity_prompts) == 1
    # A later explicit --pairs above the preset's convergence N raises the reference with it.
    assert GroundTruthConfig(scale="ci", pairs=40).resolved().convergence_pairs == 40


def test_scale_flag_applies_to_the_cli_defaults():
    cls, _, rest, prog = select(["groundtruth", "--groundtruth.scale", "gpu",
                                 "--groundtruth.pairs", "100", "--groundtruth.split", "tune"])
    cfg = parse(cls, rest, prog).groundtruth.resolved()
    assert (cfg.scale, cfg.pairs, cfg.pool, cfg.split) == ("gpu", 100, 1024, "tune")
    assert cfg.prompts == complexity_prompts("tune", SCALES["gpu"]["per_count"])


def test_protocol_flags_are_checked():
    with pytest.raises(UserError, match="headline"):
        GroundTruthConfig(headline="vaease", complexity=ComplexityConfig(
            vaease=VAEaseConfig(enabled=False)))
    with pytest.raises(UserError, match="timesteps"):
        GroundTruthConfig(timesteps=(500, 500))
    with pytest.raises(UserError, match="timesteps"):
        GroundTruthConfig(timesteps=(1000,))
    with pytest.raises(UserError, match="convergence-n"):
        GroundTruthConfig(scale="ci", convergence_n=(64,))
    with pytest.raises(UserError, match="split"):
        GroundTruthConfig(split="validation")
    with pytest.raises(UserError, match="diversity-mode"):
        GroundTruthConfig(diversity_mode="spectral")
    assert GroundTruthConfig().diversity_mode == "uniform"   # the runs before the option


def test_the_collapsed_generator_and_the_diversity_headline():
    """The bundled model's collapse is its distilled student; any other model falls back to the
    shared-noise stand-in on its own weights. The headline's diversity variant must be one the
    run renders."""
    assert GroundTruthConfig().resolved().turbo == "shapes-student"
    assert GroundTruthConfig(model="some/folder").resolved().turbo == "shapes-turbo"
    assert GroundTruthConfig(turbo="shapes-turbo").resolved().turbo == "shapes-turbo"
    cfg = GroundTruthConfig()
    assert cfg.headline_diversity in cfg.diversity_variants()
    assert cfg.diversity_variants() == ("turbo+pca@0.25", "turbo+pca", "turbo+sae@0.25",
                                        "turbo+sae", "turbo+dd1")
    with pytest.raises(UserError, match="headline-diversity.*turbo\\+sae@0.25"):
        GroundTruthConfig(headline_diversity="turbo+sae@0.5")
    with pytest.raises(UserError, match="headline-diversity"):
        GroundTruthConfig(baseline_steps=(), headline_diversity="turbo+dd1")
    GroundTruthConfig(diversity_scales=(0.5,), headline_diversity="turbo+pca@0.5")   # accepted
    with pytest.raises(UserError, match="student of shapes"):   # not the student of this model
        GroundTruthConfig(model="some/folder", turbo="shapes-student")
