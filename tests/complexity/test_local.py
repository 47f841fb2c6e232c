"""Known-answer tests of jaxsteer.complexity.local (kNN distances, MLE and TwoNN) on point clouds
of known dimension."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.complexity import local
from tests.complexity.planted import cube, gaussian, sphere, within


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
