"""Known-answer tests of jaxsteer.complexity.spectral (PCA spectra, thresholds, parallel
analysis) on point clouds of known dimension."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.complexity import spectral
from tests.complexity.planted import D, cube, union, within


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


def test_participation_ratio_counts_equal_components_and_discounts_weak_ones():
    assert float(spectral.participation_ratio(jnp.full(5, 0.2))) == pytest.approx(5.0)
    assert float(spectral.participation_ratio(jnp.array([1.0, 0.0, 0.0]))) == pytest.approx(1.0)
    # two strong and two at a tenth of their variance: between 2 and 4, by the closed form
    lam = np.array([1.0, 1.0, 0.1, 0.1])
    got = spectral.participation_ratio(jnp.asarray(lam / lam.sum()))
    assert float(got) == pytest.approx(lam.sum() ** 2 / np.sum(lam ** 2), rel=1e-6)
    # on data: a noisy 3-dim subspace of equal variances has a ratio near 3
    x = np.random.default_rng(0).normal(size=(2000, 3)) @ np.linalg.qr(
        np.random.default_rng(1).normal(size=(12, 3)))[0].T
    x += 0.01 * np.random.default_rng(2).normal(size=x.shape)
    ratio = spectral.explained_variance_ratio(jnp.asarray(x, jnp.float32))
    assert float(spectral.participation_ratio(ratio)) == pytest.approx(3.0, rel=0.05)
