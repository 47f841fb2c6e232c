"""jaxsteer.complexity.estimate: estimate_all and its parts (spectral estimates, row
normalisation, local subsets, the config) on point clouds of known dimension."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import config
from jaxsteer.complexity import ComplexityConfig, estimate, estimate_all, spectral
from jaxsteer.errors import UserError
from tests.complexity.planted import VAE_CFG, D, N, embed, union


def test_estimate_all_on_union_of_subspaces():
    x, _ = union((2, 5), seed=0)
    cfg = ComplexityConfig(pa_draws=1, pa_null="shift", n_boot=50, n_boot_spectral=2, n_boot_pa=2,
                           vaease=VAE_CFG)
    out = estimate_all(x, jax.random.key(2), cfg)
    assert json.loads(json.dumps(out)) == out
    assert out["n_samples"] == N and out["dim"] == D
    assert out["subspace_size"]["value"] == 7.0 and out["parallel_analysis"]["value"] == 7.0
    assert out["pca_90"]["value"] <= out["pca_95"]["value"] <= 7.0
    for name in ("subspace_size", "parallel_analysis", "mle", "twonn", "vaease"):
        lo, hi = out[name]["ci"]
        assert lo <= out[name]["value"] <= hi, name
    # Half the points are locally 2-dim, half 5-dim: the averages land in between.
    assert 2.0 < out["mle"]["value"] < 5.0 and 2.0 < out["twonn"]["value"] < 5.0
    assert out["mle"]["points"] == N
    hist = np.array(out["vaease"]["hist"])
    assert hist.sum() == N and len(hist) == VAE_CFG.latents + 1
    assert hist[1:4].sum() >= 0.4 * N and hist[4:7].sum() >= 0.4 * N
    # Without VAEase and spectral intervals the rest is unchanged: each has its own key stream.
    off = estimate_all(x, jax.random.key(2), dataclasses.replace(
        cfg, n_boot_spectral=0, n_boot_pa=0, vaease=dataclasses.replace(VAE_CFG,
                                                                        enabled=False)))
    assert off["vaease"] is None and off["subspace_size"]["ci"] is None
    assert off["subspace_size"]["value"] == 7.0
    assert off["parallel_analysis"]["value"] == 7.0 and off["parallel_analysis"]["ci"] is None
    for name in ("mle", "twonn"):
        assert off[name] == out[name], name
    # One estimate alone is the same number from the same key (only its own family runs).
    off_cfg = dataclasses.replace(cfg, n_boot_spectral=0, n_boot_pa=0,
                                  vaease=dataclasses.replace(VAE_CFG, enabled=False))
    for name in ("subspace_size", "parallel_analysis", "mle"):
        assert estimate.estimate_one(x, jax.random.key(2), off_cfg, name) == off[name], name
    assert estimate.estimator_names(off_cfg) == ("subspace_size", "pca_90", "pca_95",
                                                 "participation_ratio", "parallel_analysis",
                                                 "mle", "twonn")
    # 2 + 5 equal-variance directions, each half the points: between 2 and the 7 it spans
    assert 2.0 < off["participation_ratio"]["value"] <= 7.0
    assert estimate.estimate_one(x, jax.random.key(2), off_cfg, "participation_ratio") == \
        off["participation_ratio"]
    with pytest.raises(UserError, match="vaease"):
        estimate.estimate_one(x, jax.random.key(2), off_cfg, "vaease")


def test_threshold_modes_differ_only_with_fewer_samples_than_dimensions():
    # 60 samples in D = 1000: 5 strong directions (ratio ~0.18 each) and 10 weak ones (~0.008
    # each), between 2.5 / D = 0.0025 (fixed) and 2.5 / min(N, D) = 0.042 (n_dependent).
    rng = np.random.default_rng(3)
    z = rng.standard_normal((60, 15)) * np.concatenate([np.full(5, 1.0), np.full(10, 0.21)])
    x = jnp.asarray(embed(z, 4), jnp.float32)
    assert int(spectral.subspace_size(x)) == 15
    assert int(spectral.subspace_size(x, mode="n_dependent")) == 5
    assert spectral.threshold_dim(60, 1000, "n_dependent") == 60
    assert spectral.threshold_dim(5000, 1000, "n_dependent") == 1000   # N >= D: the same
    out = estimate.spectral_estimates(x, jax.random.key(0), ComplexityConfig(
        threshold_mode="n_dependent", n_boot_spectral=0), pa=False)
    assert out["subspace_size"]["value"] == 5.0 and "parallel_analysis" not in out
    assert out["subspace_size"]["threshold"] == pytest.approx(2.5 / 60)


def test_normalize_rows():
    x = jnp.asarray([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], jnp.float32)
    np.testing.assert_allclose(np.asarray(estimate.normalize_rows(x, "l2")),
                               [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], rtol=1e-6)
    assert estimate.normalize_rows(x, "none") is x
    with pytest.raises(UserError, match="normalisation"):
        estimate.normalize_rows(x, "l1")


def test_local_subset_draws_distinct_rows():
    x = jnp.arange(50.0)[:, None]
    sub = estimate._subset(x, jax.random.key(0), 20)
    assert sub.shape == (20, 1) and len(set(np.asarray(sub)[:, 0].tolist())) == 20
    assert estimate._subset(x, jax.random.key(0), 80) is x


def test_estimate_all_rejects_bad_input():
    with pytest.raises(UserError):
        estimate_all(jnp.ones((50,)), jax.random.key(0), ComplexityConfig())
    with pytest.raises(UserError):
        estimate_all(jnp.full((50, 4), jnp.nan), jax.random.key(0), ComplexityConfig())


def test_config_builds_from_dotted_values_and_validates():
    cfg = config.build(ComplexityConfig, {"pa_null": "gaussian", "vaease.latents": "16",
                                          "variance_levels": "0.8,0.99"})
    assert cfg.pa_null == "gaussian" and cfg.vaease.latents == 16
    assert cfg.variance_levels == (0.8, 0.99)
    assert estimate._level_name(0.99) == "pca_99"
    for bad in ({"mle_k": "1"}, {"level": "1.5"}, {"vaease.min_gap": "2"},
                {"pa_null": "uniform"}):
        with pytest.raises(UserError):
            config.build(ComplexityConfig, bad)
    assert "--vaease.gamma-lr" in config.build_parser(ComplexityConfig, "x").format_help()


def test_an_interval_that_misses_its_estimate_says_so_and_the_survey_stretches_it():
    """Five strong directions over an isotropic noise floor, 96 rows in 512 dimensions: the
    variance-level counts reach into the floor, every row resample lowers them, and their
    percentile interval lies below the point (fresh samples of 96 rows would centre on it)."""
    from jaxsteer.survey import interval_width

    rng = np.random.default_rng(0)
    z = rng.normal(size=(96, 5)) * np.array([3, 2.5, 2, 1.5, 1.2])
    x = np.concatenate([z, np.zeros((96, 507))], 1) + 0.35 * rng.normal(size=(96, 512))
    cfg = ComplexityConfig(n_boot_spectral=20)
    out = estimate.spectral_estimates(jnp.asarray(x, jnp.float32), jax.random.key(0), cfg)
    pca = out["pca_90"]
    assert not pca["ci_covers_value"] and pca["ci"][1] < pca["value"]
    assert interval_width(out, "pca_90") == pytest.approx(pca["value"] - pca["ci"][0])
    ok = {"value": 5.0, "ci": [4.0, 6.0], "ci_covers_value": True}
    assert interval_width({"e": ok}, "e") == 2.0


def test_parallel_analysis_interval_resamples_the_data_and_its_null_alike():
    """Per row resample (its own: the key's third stream), the leading run of that
    resample's PCA variances above the null draws taken at the same rows. A null of all rows
    would be cleared by the resample's noise alone: its repeated rows spread the noise
    eigenvalues (on this cloud that interval was 23..30 around a count of 7)."""
    from jaxsteer.complexity import intervals

    rng = np.random.default_rng(1)
    # 4 strong directions and 3 weaker ones near the noise floor: resamples disagree on those
    z = rng.normal(size=(120, 7)) * np.array([3.0, 2.6, 2.2, 1.9, 1.2, 1.08, 0.96])
    x = jnp.asarray(embed(z, 5) + 0.25 * rng.normal(size=(120, D)), jnp.float32)
    cfg = ComplexityConfig(pa_draws=2, pa_null="shift", n_boot_spectral=0, n_boot_pa=16)
    assert ComplexityConfig().n_boot_pa == 0   # off by default: pa_draws + 1 SVDs a resample
    key = jax.random.key(4)
    pa = estimate.spectral_estimates(x, key, cfg)["parallel_analysis"]
    k_pa, _ = jax.random.split(key)
    count, _, null_k = spectral.parallel_analysis(x, k_pa, 2, cfg.pa_quantile, "shift")
    # the identity resample's null is the point estimate's null
    np.testing.assert_allclose(spectral.resampled_null_quantile(
        x, k_pa, jnp.arange(120), 2, cfg.pa_quantile, "shift"), null_k, rtol=1e-5)
    idx_bn = intervals.resample_indices(jax.random.fold_in(key, 2), 120, 16)

    @jax.jit
    def count_of(idx_n):   # one replicate, written out
        null_k = spectral.resampled_null_quantile(x, k_pa, idx_n, 2, 0.95, "shift")
        return spectral.leading_run(spectral.pca_variances(x[idx_n]) > null_k)
    want_b = jnp.asarray([count_of(i) for i in idx_bn], jnp.float32)
    lo, hi = intervals.percentile_interval(want_b, 0.95)
    assert pa["value"] == float(count) == 7.0 and pa["ci"] == [float(lo), float(hi)]
    assert pa["ci_covers_value"] and pa["ci"][0] < pa["ci"][1]   # the weaker ones move it
    off = estimate.spectral_estimates(x, key, dataclasses.replace(cfg, n_boot_pa=0))
    assert off["parallel_analysis"]["ci"] is None and off["parallel_analysis"]["value"] == 7.0
