"""Global (linear) dimension estimates from the PCA spectrum of an ``[n, d]`` matrix.

Axis letters: n samples (rows), d ambient dimension (columns), k spectrum components
(``min(n, d)``), m null draws of parallel analysis.

The spectrum is the eigenvalues of the smaller Gram matrix of the centred data (``X^T X`` or
``X X^T``, whichever is ``k x k``), multiplied out in full float32 precision: the ground-truth
benchmark takes dozens of spectra per prompt (bootstraps, null draws, variants), and an SVD is
the slower way to them (a 4,096 x 2,048 one: 1.02 s against 0.71 s for the product and
``eigh`` on a 2-core CPU; the GPU's share of the benchmark was not timed apart). The
eigenvalues are accurate to about float32 epsilon times the largest, four orders of magnitude
below the smallest threshold in use (2.5 / D of the total variance), and only values are taken
(the authors' misaligned Gram eigenvectors do not arise): ``tests/complexity/test_spectral.py``
checks them against numpy's SVD.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp


def pca_variances(x_nd: jax.Array) -> jax.Array:
    """Variance along each principal component, largest first.

    Args:
      x_nd: ``[n, d]`` samples in rows.

    Returns:
      ``[k]`` with ``k = min(n, d)``: squared singular values of the centred matrix over ``n - 1``.
    """
    n, d = x_nd.shape
    xc_nd = x_nd - jnp.mean(x_nd, axis=0, keepdims=True)
    hi = jax.lax.Precision.HIGHEST   # TF32 products would blur components below ~1e-3
    gram_kk = (jnp.matmul(xc_nd.T, xc_nd, precision=hi) if n >= d
               else jnp.matmul(xc_nd, xc_nd.T, precision=hi))
    ev_k = jnp.linalg.eigh(gram_kk)[0][::-1]   # eigh is ascending
    return jnp.maximum(ev_k, 0.0) / (n - 1)


def explained_variance_ratio(x_nd: jax.Array) -> jax.Array:
    """Fraction of the total variance explained by each component, ``[k]``, summing to 1."""
    var_k = pca_variances(x_nd)
    return var_k / jnp.maximum(jnp.sum(var_k), jnp.finfo(var_k.dtype).tiny)


def count_above_threshold(ratio_k: jax.Array, dim: int, factor: float = 2.5) -> jax.Array:
    """The authors' subspace size: components whose explained-variance ratio exceeds factor / dim.

    Args:
      ratio_k: ``[k]`` explained-variance ratios.
      dim: the ambient dimension D of the samples (not k: the threshold is "2.5 / D").
      factor: numerator of the threshold [2.5, ELROND].

    Returns:
      int32 scalar.
    """
    return jnp.sum(ratio_k > factor / dim).astype(jnp.int32)


THRESHOLD_MODES = ("fixed", "n_dependent")


def threshold_dim(n: int, dim: int, mode: str = "fixed") -> int:
    """The D of the "factor / D" threshold: the ambient dimension (``fixed``, the paper's 2.5 / D)
    or ``min(n, dim)`` (``n_dependent``, the authors' rebuttal variant: with fewer samples than
    dimensions the ratios are spread over only n - 1 components, so 2.5 / D is too lenient)."""
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"unknown threshold mode {mode!r}")
    return dim if mode == "fixed" else min(n, dim)


def subspace_size(x_nd: jax.Array, factor: float = 2.5, mode: str = "fixed") -> jax.Array:
    """Number of PCA components of ``x_nd`` ``[n, d]`` with explained-variance ratio > factor / D
    (D from `threshold_dim`)."""
    return count_above_threshold(explained_variance_ratio(x_nd),
                                 threshold_dim(*x_nd.shape, mode), factor)


def components_for_variance(ratio_k: jax.Array, level: float) -> jax.Array:
    """Fewest leading components whose cumulative explained-variance ratio reaches ``level``.

    Args:
      ratio_k: ``[k]`` explained-variance ratios, largest first.
      level: fraction of variance in (0, 1], e.g. 0.9.

    Returns:
      int32 scalar in [1, k].
    """
    cum_k = jnp.cumsum(ratio_k)
    # A small slack so that a spectrum that reaches the level exactly (e.g. 5 equal components
    # and level 0.8 * 5/5) is not pushed one component further by float32 rounding of the cumsum.
    below = jnp.sum(cum_k < level - 1e-6)
    return jnp.minimum(below + 1, ratio_k.shape[0]).astype(jnp.int32)


def participation_ratio(ratio_k: jax.Array) -> jax.Array:
    """``(sum lambda)^2 / sum lambda^2 = 1 / sum r^2`` of explained-variance ratios ``[k]``: the
    number of equally strong components with the same spread of variance, a float32 scalar.

    No threshold: every component counts in proportion to its variance, so a flat noise floor
    raises it and a few dominant components lower it (on the shapes world it tracks how strongly
    a prompt's pairs differ, see the README's ground-truth section).
    """
    return 1.0 / jnp.sum(jnp.square(ratio_k))


def _null_draw(x_nd: jax.Array, key: jax.Array, null: str) -> jax.Array:
    """One draw ``[n, d]`` of data with the columns of ``x_nd`` made independent."""
    if null not in ("permute", "shift", "gaussian"):
        raise ValueError(f"unknown parallel-analysis null {null!r}")
    if null == "permute":
        # Shuffling each column on its own keeps every marginal distribution and destroys the
        # correlations between columns, which are what the principal components measure.
        z_nd = jax.random.permutation(key, x_nd, axis=0, independent=True)
    elif null == "shift":
        # A cheap stand-in for "permute" where sorting is slow (CPU: ~1 s per 2000 x 1000 draw):
        # one shared row shuffle, then each column rolled by its own random offset. Rows that
        # meet after the roll come from different samples, so correlations vanish too (except
        # between the ~d^2 / 2n column pairs that draw the same offset), marginals stay exact.
        k_perm, k_shift = jax.random.split(key)
        n = x_nd.shape[0]
        z_nd = x_nd[jax.random.permutation(k_perm, n)]
        shift_d = jax.random.randint(k_shift, (x_nd.shape[1],), 0, n)
        rows_nd = (jnp.arange(n)[:, None] + shift_d[None, :]) % n
        z_nd = jnp.take_along_axis(z_nd, rows_nd, axis=0)
    else:
        sd_d = jnp.std(x_nd, axis=0, ddof=1)
        z_nd = jax.random.normal(key, x_nd.shape, x_nd.dtype) * sd_d[None, :]
    return z_nd


@functools.partial(jax.jit, static_argnames=("n_null", "quantile", "null"))
def null_quantile(x_nd: jax.Array, key: jax.Array, n_null: int = 20, quantile: float = 0.95,
                  null: Literal["permute", "shift", "gaussian"] = "permute") -> jax.Array:
    """Per-component ``quantile`` of the PCA variances of ``n_null`` null draws, ``[k]``."""
    return resampled_null_quantile(x_nd, key, None, n_null, quantile, null)


def resampled_null_quantile(x_nd: jax.Array, key: jax.Array, idx_n: jax.Array | None,
                            n_null: int, quantile: float, null: str) -> jax.Array:
    """`null_quantile`'s draws (same ``key``) taken at the rows ``idx_n`` of a bootstrap
    resample (None: all rows, `null_quantile` itself), ``[k]``: a resample's repeated rows
    spread its noise eigenvalues, and its null needs the same repeats, or the noise alone clears
    the full data's quantiles."""
    def variances(k):
        z_nd = _null_draw(x_nd, k, null)
        return pca_variances(z_nd if idx_n is None else z_nd[idx_n])
    # lax.map runs the draws one after another: each holds a full [n, d] copy, so a vmap over
    # them would multiply peak memory by n_null for no gain on CPU or accelerators.
    var_mk = jax.lax.map(variances, jax.random.split(key, n_null))
    return jnp.quantile(var_mk, quantile, axis=0)


def leading_run(mask_k: jax.Array) -> jax.Array:
    """Length of the initial run of True values of a ``[k]`` bool mask, as int32."""
    return jnp.sum(jnp.cumprod(mask_k.astype(jnp.int32)))


def parallel_analysis(x_nd: jax.Array, key: jax.Array, n_null: int = 20, quantile: float = 0.95,
                      null: Literal["permute", "shift", "gaussian"] = "permute",
                      var_k: jax.Array | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Horn's parallel analysis on the PCA spectrum.

    Components are kept, from the first, while their variance exceeds the ``quantile`` of the
    same-rank variance of data whose columns were made independent (each column permuted on its
    own, or Gaussian with the same column variances).

    Args:
      x_nd: ``[n, d]`` samples in rows.
      key: PRNG key for the null draws.
      n_null: number of null draws.
      quantile: quantile of the null variances a component must exceed.
      null: ``"permute"`` (each column permuted, Horn's classic null), ``"shift"`` (each column
        rolled by a random offset after one row shuffle: same idea, no sort), or ``"gaussian"``
        (independent normal columns with the data's column variances).
      var_k: the PCA variances of ``x_nd`` if already computed (saves one SVD).

    Returns:
      (count int32 scalar, observed variances ``[k]``, null quantiles ``[k]``).
    """
    if var_k is None:
        var_k = pca_variances(x_nd)
    null_k = null_quantile(x_nd, key, n_null, quantile, null)
    return leading_run(var_k > null_k), var_k, null_k
