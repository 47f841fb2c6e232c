"""`jaxsteer.decompose.planted`: the planted data really have the structure the known-answer
tests and benchmarks rely on."""

import numpy as np

from jaxsteer.decompose.planted import planted_sparse, planted_subspace


def test_subspace_data_lie_in_the_span_of_an_orthonormal_basis_plus_small_noise():
    n, d, k, noise = 400, 30, 4, 0.05
    x, basis = planted_subspace(1, n, d, k, noise=noise)
    assert x.shape == (n, d) and basis.shape == (k, d)
    assert x.dtype == basis.dtype == np.float32
    np.testing.assert_allclose(basis @ basis.T, np.eye(k), atol=1e-5)
    centred = x - x.mean(0)
    resid = centred - centred @ basis.T @ basis
    # What is left outside the subspace is the noise: per-entry std ~ noise.
    assert np.std(resid) < 1.2 * noise and np.std(resid) > 0.8 * noise * np.sqrt((d - k) / d)
    # The variances along the basis follow the planted scales 10 .. 4, in decreasing order.
    stds = np.std(centred @ basis.T, axis=0)
    np.testing.assert_allclose(stds, np.linspace(10.0, 4.0, k), rtol=0.15)
    assert np.all(np.diff(stds) < 0)
    assert np.linalg.norm(x.mean(0)) > 5 * noise * np.sqrt(d)  # an offset (PCA must centre)


def test_subspace_is_a_function_of_the_seed():
    a, ba = planted_subspace(5, 20, 8, 2)
    b, bb = planted_subspace(5, 20, 8, 2)
    c, _ = planted_subspace(6, 20, 8, 2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ba, bb)
    assert not np.allclose(a, c)


def test_sparse_rows_combine_exactly_active_atoms_with_positive_codes():
    n, d, atoms, active = 50, 24, 12, 3
    x, dic = planted_sparse(2, n, d, atoms, active)
    assert x.shape == (n, d) and dic.shape == (atoms, d) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(dic, axis=1), 1.0, rtol=1e-6)
    # atoms < d: the atoms are linearly independent, so least squares recovers the codes.
    codes = np.linalg.lstsq(dic.T.astype(np.float64), x.T.astype(np.float64), rcond=None)[0].T
    on = np.abs(codes) > 1e-4
    assert np.all(on.sum(1) == active)
    assert np.all((codes[on] > 0.5 - 1e-4) & (codes[on] < 1.5 + 1e-4))
    assert on.any(0).sum() > atoms // 2                 # the chosen atoms vary from row to row


def test_sparse_noise_is_added_on_top():
    clean, dic = planted_sparse(3, 200, 16, 8, 2)
    noisy, dic2 = planted_sparse(3, 200, 16, 8, 2, noise=0.1)
    np.testing.assert_array_equal(dic, dic2)             # same draws before the noise
    assert abs(np.std(noisy - clean) - 0.1) < 0.01
