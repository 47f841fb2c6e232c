"""Known-answer tests of the complexity estimators on point clouds of known dimension.

Every cloud has 2,000 points in D = 1,000 dimensions, put there by a random orthonormal map, so
each compiled function (one per shape) is shared by all tests. Budget: well under a minute on
2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import config
from jaxsteer.complexity import (
    ComplexityConfig,
    VAEaseConfig,
    estimate,
    estimate_all,
    intervals,
    local,
    spectral,
    vaease,
)
from jaxsteer.errors import UserError

N, D = 2000, 1000


@pytest.fixture(autouse=True)
def strict_jax():
    """Our own maths must not lean on implicit rank or dtype promotion (ARCHITECTURE.md 7)."""
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


def embed(z_nm: np.ndarray, seed: int) -> np.ndarray:
    """``[n, m]`` coordinates mapped into D dimensions by a random orthonormal ``[m, D]`` map."""
    q_dm, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((D, z_nm.shape[1])))
    return z_nm @ q_dm.T


def cube(d: int, seed: int, noise: float = 0.0) -> jax.Array:
    """Uniform in [-1, 1]^d inside a random d-dimensional linear subspace, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    x = embed(rng.uniform(-1.0, 1.0, (N, d)), seed + 1)
    return jnp.asarray(x + noise * rng.standard_normal((N, D)), jnp.float32)


def gaussian(d: int, seed: int) -> jax.Array:
    """Standard normal inside a random d-dimensional linear subspace (no boundary)."""
    return jnp.asarray(embed(np.random.default_rng(seed).standard_normal((N, d)), seed + 1),
                       jnp.float32)


def sphere(d: int, seed: int) -> jax.Array:
    """Uniform on the unit d-sphere (in R^(d+1)), mapped into D dimensions."""
    g = np.random.default_rng(seed).standard_normal((N, d + 1))
    return jnp.asarray(embed(g / np.linalg.norm(g, axis=1, keepdims=True), seed + 1),
                       jnp.float32)


def union(dims: tuple[int, ...], seed: int, noise: float = 0.0) -> tuple[jax.Array, np.ndarray]:
    """Equal shares of points uniform in random subspaces of the given dims; (x, true dim)."""
    rng = np.random.default_rng(seed)
    sizes = np.diff(np.linspace(0, N, len(dims) + 1).astype(int))
    parts = [embed(rng.uniform(-1.0, 1.0, (s, d)), seed + 10 + i)
             for i, (s, d) in enumerate(zip(sizes, dims, strict=True))]
    x = np.concatenate(parts) + noise * rng.standard_normal((N, D))
    return jnp.asarray(x, jnp.float32), np.repeat(np.array(dims), sizes)


def within(est: float, d: int, tol: float = 0.10) -> bool:
    return abs(float(est) - d) <= tol * d


# ----------------------------------------------------------------------------- spectral


@pytest.mark.parametrize("n,d", [(60, 20), (20, 60)])
def test_pca_variances_match_numpy(n, d):
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    want = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2 / (n - 1)
    # atol: with n < d the centred rank is n - 1, so the last variance is 0 up to rounding
    np.testing.assert_allclose(spectral.pca_variances(jnp.asarray(x)), want, rtol=1e-4,
                               atol=1e-6 * want[0])


@pytest.mark.parametrize("n,d", [(400, 100), (100, 400)])
def test_pca_variances_keep_small_components(n, d):
    # A spectrum falling over six decades (variance ratios 0.2 .. 2e-7): the Gram eigenvalues
    # must keep every component above 1e-5 of the total to 1e-3 (the thresholds in use are
    # >= 2.5 / D; SDXL's D = 157,696 gives 1.6e-5) and count the threshold like the SVD.
    rng = np.random.default_rng(1)
    k = min(n, d) - 1
    u, _ = np.linalg.qr(rng.standard_normal((n, k)))
    v, _ = np.linalg.qr(rng.standard_normal((d, k)))
    x = (u - u.mean(0)) * np.logspace(0, -3, k) @ v.T * 10.0
    want = np.linalg.svd(x - x.mean(0), compute_uv=False)[:k] ** 2 / (n - 1)
    got = np.asarray(spectral.pca_variances(jnp.asarray(x, jnp.float32)))[:k]
    big = want / want.sum() > 1e-5
    np.testing.assert_allclose(got[big], want[big], rtol=1e-3)
    for factor in (2.5, 0.25):
        assert int(spectral.count_above_threshold(jnp.asarray(got / got.sum()), d, factor)) \
            == int(np.sum(want / want.sum() > factor / d))


def test_components_for_variance_counts_leading_components():
    ratio = jnp.asarray([0.5, 0.3, 0.15, 0.05])
    assert int(spectral.components_for_variance(ratio, 0.5)) == 1
    assert int(spectral.components_for_variance(ratio, 0.8)) == 2
    assert int(spectral.components_for_variance(ratio, 0.9)) == 3
    assert int(spectral.components_for_variance(ratio, 1.0)) == 4
    # Five equal components reach 80% with exactly four, despite float32 rounding of the sum.
    assert int(spectral.components_for_variance(jnp.full((5,), 0.2), 0.8)) == 4


@pytest.mark.parametrize("d", [2, 5, 10])
def test_subspace_size_and_parallel_analysis_on_noisy_subspace(d):
    x = cube(d, seed=d, noise=0.01)
    var_k = spectral.pca_variances(x)
    assert within(spectral.count_above_threshold(var_k / jnp.sum(var_k), D), d)
    # One null draw keeps this to two SVDs (the CPU cost of this file): the smallest signal
    # variance here is ~30x the null's largest, so the 95th percentile of 20 draws (the
    # default) would count the same.
    pa, obs_k, null_k = spectral.parallel_analysis(x, jax.random.key(d), n_null=1, null="shift",
                                                   var_k=var_k)
    assert within(pa, d)
    assert float(obs_k[d - 1]) > 10 * float(null_k[0])


def test_union_of_subspaces_spans_their_sum():
    x, _ = union((3, 4), seed=7, noise=0.01)
    var_k = spectral.pca_variances(x)
    assert int(spectral.count_above_threshold(var_k / jnp.sum(var_k), D)) == 7
    pa, _, _ = spectral.parallel_analysis(x, jax.random.key(0), n_null=1, null="shift",
                                          var_k=var_k)
    assert int(pa) == 7


def test_variance_levels_on_equal_variance_subspace():
    # 5 orthogonal directions of equal variance: 90% and 95% both need all five.
    q_dm, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((60, 5)))
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (400, 5)) @ q_dm.T, jnp.float32)
    ratio = spectral.explained_variance_ratio(x)
    assert int(spectral.components_for_variance(ratio, 0.9)) == 5
    assert int(spectral.components_for_variance(ratio, 0.95)) == 5
    assert int(spectral.components_for_variance(ratio, 0.5)) == 3


@pytest.mark.parametrize("null", ["permute", "gaussian"])
def test_parallel_analysis_classic_nulls(null):
    # Horn's column permutation and the Gaussian null, on a smaller cloud: sorting 2,000 x 1,000
    # entries per permutation takes seconds on a CPU.
    q_dm, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((80, 3)))
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (400, 3)) @ q_dm.T + 0.01 * rng.standard_normal((400, 80))
    pa, _, _ = spectral.parallel_analysis(jnp.asarray(x, jnp.float32), jax.random.key(0),
                                          n_null=5, null=null)
    assert int(pa) == 3


# ----------------------------------------------------------------------------- local


def test_knn_distances_match_brute_force():
    x = np.random.default_rng(1).standard_normal((70, 9)).astype(np.float32)
    got = local.knn_distances(jnp.asarray(x), 4, chunk=32)  # 70 rows: a ragged last chunk
    full = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.diag(np.full(70, np.inf))
    np.testing.assert_allclose(got, np.sort(full, axis=1)[:, :4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sphere", "gaussian"])
@pytest.mark.parametrize("d", [2, 5, 10])
def test_mle_and_twonn_recover_dimension(kind, d):
    x = (sphere if kind == "sphere" else gaussian)(d, seed=100 + d)
    assert within(local.mle_dimension(x, k=10), d)
    assert within(local.twonn_dimension(x), d)


@pytest.mark.parametrize("d", [2, 5, 10])
def test_local_estimators_on_uniform_cube(d):
    """Uniform in a cube: exact at d = 2; above, boundary points bias both estimators low.

    With 2,000 points the kNN radius at d = 10 is about half the cube's width, so most points
    see the boundary. Measured here: MLE 4.5 / 8.2 and TwoNN 4.4 / 8.8 at d = 5 / 10 (Levina and
    Bickel report the same downward bias on hypercubes). The test pins that behaviour.
    """
    x = cube(d, seed=200 + d)
    mle, two = float(local.mle_dimension(x, k=10)), float(local.twonn_dimension(x))
    if d == 2:
        assert within(mle, d) and within(two, d)
    else:
        assert 0.75 * d <= mle <= d and 0.75 * d <= two <= d


def test_duplicate_rows_are_left_out():
    x = np.asarray(gaussian(3, seed=5))[:500]
    x = jnp.asarray(np.concatenate([x, x[:50]]))
    assert np.isfinite(float(local.mle_dimension(x))) and np.isfinite(
        float(local.twonn_dimension(x)))


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_of_a_mean():
    v = jax.random.normal(jax.random.key(0), (N,))
    lo, hi = intervals.bootstrap(jnp.mean, v, jax.random.key(1), n_boot=300, level=0.95)
    assert float(lo) < float(jnp.mean(v)) < float(hi)
    assert 0.7 < float(hi - lo) / (2 * 1.96 / np.sqrt(N)) < 1.3
    again = intervals.bootstrap(jnp.mean, v, jax.random.key(1), n_boot=300, level=0.95)
    assert (float(again[0]), float(again[1])) == (float(lo), float(hi))


def test_bootstrap_vector_statistic_and_bad_arguments():
    v = jax.random.normal(jax.random.key(2), (100, 3))
    lo, hi = intervals.bootstrap(lambda a: jnp.mean(a, 0), v, jax.random.key(3), n_boot=50)
    assert lo.shape == hi.shape == (3,) and bool(jnp.all(lo <= hi))
    with pytest.raises(ValueError):
        intervals.bootstrap(jnp.mean, v, jax.random.key(3), n_boot=1)


# ----------------------------------------------------------------------------- VAEase


def test_two_group_split():
    split = vaease.two_group_split
    assert int(split(jnp.asarray([0.01, 0.98, 0.02, 0.99, 1.0]), 0.5)) == 2
    assert int(split(jnp.asarray([0.001, 0.002, 0.003, 0.004]), 0.5)) == 4  # all open
    assert int(split(jnp.asarray([0.97, 0.99, 0.98, 1.0]), 0.5)) == 0  # all closed
    assert int(split(jnp.asarray([0.0, 0.0, 0.0, 0.1, 0.99]), 0.5)) == 4


# One VAEase setting for both tests below, so the trainer compiles once for the file.
VAE_CFG = VAEaseConfig(latents=32, hidden=64, pca_dims=32, steps=1000)


def test_vaease_per_sample_dims_on_union_of_subspaces():
    x, true_n = union((2, 5), seed=0)
    counts = np.asarray(vaease.vaease_active_dims(x, jax.random.key(0), VAE_CFG))
    hit = np.abs(counts - true_n) <= 1
    assert hit.mean() >= 0.8, (hit.mean(), np.bincount(counts))


# ----------------------------------------------------------------------------- estimate_all


def test_estimate_all_on_union_of_subspaces():
    x, _ = union((2, 5), seed=0)
    cfg = ComplexityConfig(pa_draws=1, pa_null="shift", n_boot=50, n_boot_spectral=2,
                           vaease=VAE_CFG)
    out = estimate_all(x, jax.random.key(2), cfg)
    assert json.loads(json.dumps(out)) == out
    assert out["n_samples"] == N and out["dim"] == D
    assert out["subspace_size"]["value"] == 7.0 and out["parallel_analysis"]["value"] == 7.0
    assert out["pca_90"]["value"] <= out["pca_95"]["value"] <= 7.0
    for name in ("subspace_size", "mle", "twonn", "vaease"):
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
        cfg, n_boot_spectral=0, vaease=dataclasses.replace(VAE_CFG, enabled=False)))
    assert off["vaease"] is None and off["subspace_size"]["ci"] is None
    assert off["subspace_size"]["value"] == 7.0
    for name in ("parallel_analysis", "mle", "twonn"):
        assert off[name] == out[name], name
    # One estimate alone is the same number from the same key (only its own family runs).
    off_cfg = dataclasses.replace(cfg, n_boot_spectral=0,
                                  vaease=dataclasses.replace(VAE_CFG, enabled=False))
    for name in ("subspace_size", "parallel_analysis", "mle"):
        assert estimate.estimate_one(x, jax.random.key(2), off_cfg, name) == off[name], name
    assert estimate.estimator_names(off_cfg) == ("subspace_size", "pca_90", "pca_95",
                                                 "parallel_analysis", "mle", "twonn")
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
