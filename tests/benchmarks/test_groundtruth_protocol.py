"""The ground-truth benchmark's protocol: prompt lists per split, scale presets, convergence and
the headline, on planted data (no model runs here)."""

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
)
from jaxsteer.benchmarks.groundtruth import convergence as conv
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig, estimate_one
from jaxsteer.config import parse, to_dict
from jaxsteer.errors import UserError
from jaxsteer.shapes.captions import HELDOUT_CAPTIONS, free_count, split_of


@pytest.mark.parametrize("split", ["tune", "test"])
def test_prompt_lists_per_split(split):
    prompts = complexity_prompts(split, SCALES["gpu"]["per_count"])
    counts = [free_count(p) for p in prompts]
    assert len(prompts) >= 24 and len(set(prompts)) == len(prompts)
    for n in range(5):
        assert counts.count(n) >= 3, n
    assert counts.count(5) == (1 if split == "test" else 0)   # "a shape" is a test caption
    assert all(split_of(p) == split for p in prompts)
    assert not set(prompts) & set(HELDOUT_CAPTIONS)
    rec, div = section_prompts(split, SCALES["gpu"]["per_count"], SCALES["gpu"]["section_prompts"])
    assert len(rec) >= 6 and len(div) >= 6 and set(rec).isdisjoint(div)
    assert set(rec) | set(div) <= set(prompts)       # they reuse the complexity gradients
    assert {free_count(p) for p in rec} == {free_count(p) for p in div} == {2, 3, 4}


def test_splits_share_no_prompt():
    lists = {s: set(complexity_prompts(s, 10)) for s in ("tune", "test")}
    assert lists["tune"].isdisjoint(lists["test"])


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


def _orthonormal(rng, k, d):
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T


def test_overlap_of_planted_bases():
    rng = np.random.default_rng(0)
    v = _orthonormal(rng, 4, 20)
    assert conv.overlap(v, v) == pytest.approx((1.0, 0.0))
    assert conv.overlap(v[:2], v[2:]) == pytest.approx((0.0, 1.0))
    # The subset recovers half the reference and adds nothing: spanned 0.5, spurious 0.
    assert conv.overlap(v, v[:2]) == pytest.approx((0.5, 0.0))
    assert conv.overlap(v[:2], v) == pytest.approx((1.0, 0.5))
    assert conv.overlap(v[:0], v) == (None, None)


def test_convergence_recovers_a_planted_subspace():
    rng = np.random.default_rng(1)
    basis = _orthonormal(rng, 3, 40)                              # 3 strong directions
    x = (rng.standard_normal((400, 3)) * [5.0, 4.0, 3.0]) @ basis
    x = (x + 0.01 * rng.standard_normal((400, 40))).astype(np.float32)
    cfg = ComplexityConfig(n_boot_spectral=4, vaease=VAEaseConfig(enabled=False))
    v = conv.significant_basis(jax.numpy.asarray(x), cfg)
    assert v.shape == (3, 40) and conv.overlap(basis, v)[0] == pytest.approx(1.0, abs=1e-4)
    table = conv.convergence(jax.numpy.asarray(x), (50, 1000), jax.random.key(0), cfg,
                             "subspace_size")
    assert [p["n"] for p in table["points"]] == [50, 400]   # N above the reference dropped
    assert table["k_reference"] == 3
    for p in table["points"]:
        assert p["k"] == 3 and p["spanned"] > 0.999 and p["spurious"] < 1e-3
        assert p["estimate"]["value"] == 3.0
    first = table["points"][0]
    # The estimate is `estimate_one`'s on the first n rows with the point's key.
    ref = estimate_one(x[:50], jax.random.fold_in(jax.random.key(0), 50), cfg, "subspace_size")
    assert first["estimate"] == {"value": ref["value"], "ci": ref["ci"]}


def test_round_robin_spans_the_counts_first():
    prompts = ("a small red circle in the middle", "a large blue square at the top left",
               "a red circle", "a green triangle", "a shape")
    assert conv.round_robin(prompts, 3) == ("a small red circle in the middle", "a red circle",
                                            "a shape")
    assert len(conv.round_robin(prompts, 10)) == 5


def test_variants_rank_every_choice_on_the_same_gradients():
    rng = np.random.default_rng(2)
    records = []
    for n_free in (0, 1, 2, 3):  # planted: the gradient cloud's rank grows with the count
        basis = _orthonormal(rng, n_free + 1, 32)
        g = (rng.standard_normal((60, n_free + 1)) * np.linspace(3.0, 2.0, n_free + 1) @ basis
             + 0.01 * rng.standard_normal((60, 32)))
        values = conv.variant_values({"word": g[:, None].astype(np.float32)}, jax.random.key(0),
                                     ComplexityConfig(mle_k=5))
        assert set(values) == {"word/none", "word/l2"}
        assert values["word/none"]["subspace_size_fixed"] == n_free + 1
        assert values["word/none"]["subspace_size_n_dependent"] == n_free + 1
        records.append({"prompt": str(n_free), "n_free": n_free, "variants": values})
    table = stats.variant_table(records)
    assert table["word/none"]["subspace_size_fixed"] == pytest.approx(1.0)
    assert table["word/none"]["pca_95"] == pytest.approx(1.0)
    assert "subspace_size" not in table["word/l2"]       # named by its threshold mode instead


def test_ranking_interval_and_monotone_means():
    records = [{"prompt": str(i), "n_free": c, "estimates": {"a": {"value": v}, "b": {"value": w}}}
               for i, (c, v, w) in enumerate([(0, 1, 5), (0, 2, 4), (1, 3, 3), (1, 4, 4),
                                              (2, 5, 1), (2, 6, 2)])]
    table = stats.ranking_table(records)
    assert table["a"]["spearman"] == pytest.approx(spearmanr([1, 2, 3, 4, 5, 6],
                                                             [0, 0, 1, 1, 2, 2]).statistic)
    assert table["a"]["monotone"] and not table["b"]["monotone"]
    assert table["a"]["means"] == {"0": 1.5, "1": 3.5, "2": 5.5}
    lo, hi = table["a"]["ci"]
    assert 0.5 < lo <= table["a"]["spearman"] <= hi <= 1.0
    assert table["b"]["ci"][1] < 0
