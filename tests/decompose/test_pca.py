"""PCA known-answer tests: a planted subspace is recovered by every solver, on 1 and 8 devices."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsteer.decompose import DirectionSet, pca, significant_count, spectrum_png
from jaxsteer.decompose.planted import planted_subspace
from jaxsteer.errors import UserError

N, D, K = 256, 64, 4


@pytest.fixture(scope="module")
def planted():
    """([n, d] data with a k-dim subspace + noise + offset, [k, d] orthonormal basis)."""
    x_nd, basis_kd = planted_subspace(0, N, D, K)
    return np.asarray(x_nd), np.asarray(basis_kd)


@pytest.fixture(scope="module")
def sharded(planted):
    """The same data, rows sharded over the 8 fake CPU devices."""
    mesh = Mesh(np.array(jax.devices()), ("data",))
    assert mesh.size == 8, "tests/conftest.py should set 8 CPU devices"
    return jax.device_put(planted[0], NamedSharding(mesh, P("data", None)))


def principal_cosines(a_kd, b_kd) -> np.ndarray:
    """Cosines of the principal angles between the row spaces of two orthonormal bases."""
    return np.linalg.svd(np.asarray(a_kd, np.float64) @ np.asarray(b_kd, np.float64).T,
                         compute_uv=False)


@pytest.fixture(scope="module")
def results(planted, sharded):
    """PCA on one device with every solver, and on 8 devices with the scalable ones."""
    x_nd = planted[0]
    out = {(m, 1): pca(x_nd, k=K, method=m) for m in ("cov", "svd", "randomized")}
    out |= {(m, 8): pca(sharded, k=K, method=m) for m in ("cov", "randomized")}
    return out


@pytest.mark.parametrize("method,devices", [("cov", 1), ("svd", 1), ("randomized", 1),
                                            ("cov", 8), ("randomized", 8)])
def test_recovers_planted_subspace(results, planted, method, devices):
    ds = results[method, devices]
    assert isinstance(ds, DirectionSet)
    assert ds.directions.shape == (K, D) and ds.directions.dtype == np.float32
    assert principal_cosines(ds.directions, planted[1]).min() >= 0.99
    np.testing.assert_allclose(np.linalg.norm(ds.directions, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ds.mean, planted[0].mean(0), atol=1e-4)
    # The noise (0.05 per entry) leaves the k planted components almost all the variance.
    assert 0.99 < float(ds.explained_variance_ratio[:K].sum()) <= 1.0 + 1e-6
    assert ds.significant_count() == K
    assert ds.metadata["solver"] == method


@pytest.mark.parametrize("method", ["cov", "randomized"])
def test_sharded_equals_single_device(results, method):
    one, eight = results[method, 1], results[method, 8]
    np.testing.assert_allclose(one.directions, eight.directions, atol=1e-5)
    np.testing.assert_allclose(one.mean, eight.mean, atol=1e-6)
    # Only the planted components: the noise tail's singular values are ill-conditioned in the
    # float32 covariance and differ at the 1e-3 level between reduction orders.
    np.testing.assert_allclose(one.singular_values[:K], eight.singular_values[:K], rtol=1e-5)
    np.testing.assert_allclose(one.explained_variance_ratio[:K],
                               eight.explained_variance_ratio[:K], rtol=1e-4)


def test_solvers_agree(results):
    exact, rand, svd = results["cov", 1], results["randomized", 1], results["svd", 1]
    for other in (rand, svd):
        np.testing.assert_allclose(exact.directions, other.directions, atol=1e-4)
        np.testing.assert_allclose(exact.singular_values[:K], other.singular_values[:K],
                                   rtol=1e-4)
    # Exact solvers return the whole spectrum, the randomized one only the k it was asked for.
    assert exact.singular_values.shape == (min(N, D),)
    assert rand.singular_values.shape == (K,)


def test_auto_picks_randomized_above_exact_max_dim(planted):
    ds = pca(planted[0], k=K, exact_max_dim=D - 1)
    assert ds.metadata["solver"] == "randomized"
    assert principal_cosines(ds.directions, planted[1]).min() >= 0.99


def test_uncentred_and_normalised_options(planted):
    x_nd = planted[0]
    raw = pca(x_nd, k=1, centre=False, method="cov")
    np.testing.assert_array_equal(raw.mean, np.zeros(D, np.float32))
    # Uncentred, the offset (norm ~3 sqrt(d) = 24 per row) dominates the first direction.
    offset = x_nd.mean(0) / np.linalg.norm(x_nd.mean(0))
    assert abs(float(raw.directions[0] @ offset)) > 0.9
    unit = pca(x_nd, k=K, normalise=True, method="cov")
    assert unit.metadata["normalise"] is True
    np.testing.assert_allclose(unit.mean, (x_nd / np.linalg.norm(x_nd, axis=1,
                                                                keepdims=True)).mean(0),
                               atol=1e-5)


def test_significant_count_rule():
    # 2.5 / 100 = 0.025: two ratios above it, one exactly on it (not counted).
    assert significant_count(np.array([0.5, 0.03, 0.025, 0.01]), 100) == 2
    with pytest.raises(ValueError):
        significant_count(np.array([0.5]), 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "k must be in"), ({"k": D + 1}, "k must be in"),
    ({"method": "eig"}, "unknown PCA method")])
def test_bad_arguments_are_user_errors(planted, kwargs, match):
    with pytest.raises(UserError, match=match):
        pca(planted[0], **{"k": K} | kwargs)


def test_bad_shape_is_user_error():
    with pytest.raises(UserError, match=r"\[n, d\]"):
        pca(np.zeros((4, 2, 3), np.float32), k=1)


def test_spectrum_png(results):
    png = spectrum_png(results["cov", 1].explained_variance_ratio, D, max_bars=16)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
