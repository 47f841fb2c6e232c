"""Planted data with a known answer: a low-dimensional subspace, a sparse dictionary.

Shared by the known-answer tests of PCA and the SAE and by the decomposition benchmark
(`jaxsteer.benchmarks.decomposition`). Axis letters: n samples, d width, a atoms, k directions.
"""

from __future__ import annotations

import numpy as np


def planted_subspace(seed: int, n: int, d: int, k: int, noise: float = 0.05
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn from a k-dimensional subspace plus isotropic noise and an offset.

    NumPy on the host, float32: tests and benchmarks then pay no compile for their data.

    Returns:
        (x_nd, basis_kd): data [n, d] and the subspace's orthonormal basis [k, d].
    """
    rng = np.random.default_rng(seed)
    basis_kd = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    scale_k = np.linspace(10.0, 4.0, k)  # distinct variances: a well-defined principal order
    coef_nk = rng.standard_normal((n, k)) * scale_k
    offset_d = 3.0 * rng.standard_normal(d)
    x_nd = coef_nk @ basis_kd + noise * rng.standard_normal((n, d)) + offset_d
    return x_nd.astype(np.float32), basis_kd.astype(np.float32)


def planted_sparse(seed: int, n: int, d: int, atoms: int, active: int, noise: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are sparse positive combinations of ``active`` of ``atoms`` unit atoms.

    Positive coefficients because a TopK-ReLU latent codes one sign of its atom only.

    Returns:
        (x_nd, atoms_ad): data [n, d] and the dictionary's unit atoms [a, d], float32.
    """
    rng = np.random.default_rng(seed)
    atoms_ad = rng.standard_normal((atoms, d))
    atoms_ad /= np.linalg.norm(atoms_ad, axis=-1, keepdims=True)
    # `active` distinct atoms per row: the first of a random ordering.
    idx_nk = np.argsort(rng.random((n, atoms)), axis=1)[:, :active]
    codes_na = np.zeros((n, atoms))
    np.put_along_axis(codes_na, idx_nk, rng.uniform(0.5, 1.5, (n, active)), axis=1)
    x_nd = codes_na @ atoms_ad
    x_nd += noise * rng.standard_normal((n, d))
    return x_nd.astype(np.float32), atoms_ad.astype(np.float32)
