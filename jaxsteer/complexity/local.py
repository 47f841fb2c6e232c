"""Local intrinsic dimension from nearest-neighbour distances: Levina–Bickel MLE and TwoNN.

Axis letters: n samples (rows), d ambient dimension, k neighbours, c rows of one chunk.

Both estimators first reduce the data to per-sample statistics (a log-distance ratio per point),
so their bootstrap resamples those statistics instead of the points: resampling points would
create duplicates at distance zero, which break every nearest-neighbour estimator.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# Distances at or below this (relative to the median first-neighbour distance) count as
# duplicates: log-ratios with them are infinite, so those points are left out.
_DUPLICATE_REL = 1e-6


@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def knn_distances(x_nd: jax.Array, k: int, chunk: int = 512) -> jax.Array:
    """Euclidean distances to the ``k`` nearest other rows, ascending.

    Candidates come from ``|a|^2 + |b|^2 - 2 a.b`` on chunks of rows (matrix products, no
    ``[n, n, d]`` tensor); the chosen ``k`` distances are then recomputed from differences, so
    they carry no cancellation error.

    Args:
      x_nd: ``[n, d]`` samples in rows.
      k: neighbours per row (``k < n``).
      chunk: rows per matrix product; bounds memory at ``chunk * n`` floats.

    Returns:
      ``[n, k]`` float32 distances, self excluded.
    """
    n = x_nd.shape[0]
    # Centring leaves distances unchanged and shrinks the norms that the expansion subtracts.
    xc_nd = (x_nd - jnp.mean(x_nd, axis=0, keepdims=True)).astype(jnp.float32)
    sq_n = jnp.sum(jnp.square(xc_nd), axis=1)
    n_chunks = -(-n // chunk)
    rows_n = jnp.arange(n_chunks * chunk, dtype=jnp.int32)

    def one_chunk(start: jax.Array) -> jax.Array:
        ids_c = jax.lax.dynamic_slice_in_dim(rows_n, start, chunk)
        a_cd = jnp.take(xc_nd, jnp.minimum(ids_c, n - 1), axis=0)
        # HIGHEST: TPUs otherwise multiply in bfloat16, whose 8-bit mantissa swamps
        # nearest-neighbour gaps.
        dot_cn = jnp.matmul(a_cd, xc_nd.T, precision=jax.lax.Precision.HIGHEST)
        d2_cn = sq_n[jnp.minimum(ids_c, n - 1)][:, None] + sq_n[None, :] - 2.0 * dot_cn
        d2_cn = jnp.where(ids_c[:, None] == jnp.arange(n)[None, :], jnp.inf, d2_cn)
        _, nbr_ck = jax.lax.top_k(-d2_cn, k)
        diff_ckd = a_cd[:, None, :] - jnp.take(xc_nd, nbr_ck, axis=0)
        return jnp.sort(jnp.sqrt(jnp.sum(jnp.square(diff_ckd), axis=-1)), axis=1)

    starts = jnp.arange(n_chunks, dtype=jnp.int32) * chunk
    dist_nk = jax.lax.map(one_chunk, starts).reshape(n_chunks * chunk, k)
    return dist_nk[:n]


def valid_rows(dist_nk: jax.Array) -> jax.Array:
    """``[n]`` bool: rows whose first-neighbour distance is not a duplicate (zero) distance."""
    scale = jnp.median(dist_nk[:, 0])
    return dist_nk[:, 0] > _DUPLICATE_REL * jnp.maximum(scale, jnp.finfo(jnp.float32).tiny)


def mle_inverse_per_point(dist_nk: jax.Array) -> jax.Array:
    """Levina–Bickel inverse dimension at each point, ``[n]``.

    ``(1 / (k - 1)) * sum_{j < k} log(T_k / T_j)`` over a point's ``k`` neighbour distances. For a
    locally uniform sample of dimension m this sum is Gamma(k - 1, rate m), so each value is an
    unbiased estimate of ``1 / m``: that is why they are averaged before inverting.
    """
    k = dist_nk.shape[1]
    log_nk = jnp.log(dist_nk)
    return jnp.sum(log_nk[:, -1:] - log_nk[:, :-1], axis=1) / (k - 1)


def mle_from_inverses(inv_n: jax.Array) -> jax.Array:
    """MacKay–Ghahramani: the dimension is the inverse of the mean per-point inverse, a scalar."""
    return 1.0 / jnp.mean(inv_n)


def mle_statistics(x_nd: jax.Array, k: int = 10, chunk: int = 512) -> jax.Array:
    """Per-point inverse dimensions ``[n_valid]`` (the rows the MLE and its bootstrap average)."""
    dist_nk = knn_distances(x_nd, k, chunk)
    return mle_inverse_per_point(dist_nk[valid_rows(dist_nk)])


def mle_dimension(x_nd: jax.Array, k: int = 10, chunk: int = 512) -> jax.Array:
    """Levina–Bickel MLE of intrinsic dimension, ``k`` neighbours, MacKay–Ghahramani average.

    Args:
      x_nd: ``[n, d]`` samples; rows that duplicate another row are left out.
      k: neighbours per point (``k >= 2``).
      chunk: rows per distance block.

    Returns:
      float32 scalar.
    """
    return mle_from_inverses(mle_statistics(x_nd, k, chunk))


def twonn_log_ratios(x_nd: jax.Array, chunk: int = 512) -> jax.Array:
    """``log(r2 / r1)`` for each non-duplicate row, ``[n_valid]``, the TwoNN statistic."""
    dist_nk = knn_distances(x_nd, 2, chunk)
    dist_nk = dist_nk[valid_rows(dist_nk)]
    return jnp.log(dist_nk[:, 1]) - jnp.log(dist_nk[:, 0])


def twonn_from_log_ratios(log_mu_n: jax.Array, discard: float = 0.1) -> jax.Array:
    """TwoNN dimension (Facco et al. 2017) from the log ratios ``[n]``, a scalar.

    ``mu = r2 / r1`` is Pareto with exponent d, so ``-log(1 - F(mu)) = d log(mu)``: a line through
    the origin fitted on the empirical CDF after dropping the largest ``discard`` fraction of mu,
    whose tail is the least reliable (the authors' recommendation, 10%).
    """
    n = log_mu_n.shape[0]
    x_n = jnp.sort(log_mu_n)
    f_n = jnp.arange(1, n + 1, dtype=jnp.float32) / n
    keep = max(1, int(round(n * (1.0 - discard))))
    x_m, y_m = x_n[:keep], -jnp.log1p(-f_n[:keep])
    if keep == n:
        # F = 1 at the last point makes -log(1 - F) infinite; drop it when nothing is discarded.
        x_m, y_m = x_m[:-1], y_m[:-1]
    return jnp.sum(x_m * y_m) / jnp.sum(jnp.square(x_m))


def twonn_dimension(x_nd: jax.Array, discard: float = 0.1, chunk: int = 512) -> jax.Array:
    """TwoNN intrinsic dimension of ``x_nd`` ``[n, d]``: a float32 scalar."""
    return twonn_from_log_ratios(twonn_log_ratios(x_nd, chunk), discard)
