"""Point clouds of known dimension shared by the complexity tests (tests/complexity/).

Every cloud has 2,000 points in D = 1,000 dimensions, put there by a random orthonormal map, so
each compiled function (one per shape) is shared by all tests. Budget: well under a minute on
2 CPU cores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.complexity import VAEaseConfig

N, D = 2000, 1000


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


# One VAEase setting for test_vaease.py and test_estimate.py, so the trainer compiles once.
VAE_CFG = VAEaseConfig(latents=32, hidden=64, pca_dims=32, steps=1000)
