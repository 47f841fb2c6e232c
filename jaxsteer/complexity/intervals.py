"""Percentile bootstrap over the rows of an array, with an explicit key.

Axis letters: n rows, b bootstrap replicates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


def resample_indices(key: jax.Array, n: int, n_boot: int) -> jax.Array:
    """Row indices of ``n_boot`` resamples of ``n`` rows with replacement, ``[b, n]`` int32."""
    return jax.random.randint(key, (n_boot, n), 0, n, dtype=jnp.int32)


def bootstrap_values(estimator: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array,
                     n_boot: int = 200) -> jax.Array:
    """The estimator on ``n_boot`` row resamples of ``x``.

    Args:
      estimator: a jit-compatible function of an array shaped like ``x`` (``[n, ...]``) that
        returns an array of any fixed shape ``S`` (a scalar, or a vector of several statistics
        that share one expensive step, such as one SVD). It must be hashable; pass a
        module-level function or a frozen-dataclass callable to reuse the compiled program.
      x: ``[n, ...]`` rows to resample.
      key: PRNG key.
      n_boot: number of replicates.

    Returns:
      ``[b, *S]`` float32 replicate values.
    """
    return _replicates(estimator, x, resample_indices(key, x.shape[0], n_boot))


@functools.partial(jax.jit, static_argnums=0)
def _replicates(estimator: Callable[[jax.Array], jax.Array], x: jax.Array,
                idx_bn: jax.Array) -> jax.Array:
    # The estimator is a static argument, so a module-level function or a hashable callable
    # object compiles once per shape (a survey reuses it for every prompt); a fresh closure
    # compiles on every call. lax.map keeps one resampled copy of x alive at a time, which
    # matters when x is a 50k x 2048 gradient matrix.
    return jax.lax.map(lambda idx_n: jnp.asarray(estimator(x[idx_n]), jnp.float32), idx_bn)


def percentile_interval(values_b: jax.Array, level: float = 0.95) -> tuple[jax.Array, jax.Array]:
    """Equal-tailed ``level`` interval of replicate values ``[b, *S]``: (lo ``S``, hi ``S``)."""
    tail = (1.0 - level) / 2.0
    # Order statistics, not interpolation: an interval of counts stays made of counts, and
    # float32 interpolation cannot put 7.0000005 above a point estimate of 7.
    return (jnp.quantile(values_b, tail, axis=0, method="lower"),
            jnp.quantile(values_b, 1.0 - tail, axis=0, method="higher"))


def bootstrap(estimator: Callable[[jax.Array], jax.Array], x: jax.Array, key: jax.Array,
              n_boot: int = 200, level: float = 0.95) -> tuple[jax.Array, jax.Array]:
    """Percentile-bootstrap confidence interval of ``estimator(x)`` over the rows of ``x``.

    Args:
      estimator: jit-compatible function of ``[n, ...]`` rows returning a fixed-shape array ``S``.
      x: ``[n, ...]`` rows (samples, or per-sample statistics such as kNN log-ratios).
      key: PRNG key; the same key gives the same interval.
      n_boot: number of bootstrap replicates.
      level: coverage of the interval, e.g. 0.95.

    Returns:
      (lo, hi), each shaped ``S``.
    """
    if n_boot < 2:
        raise ValueError(f"bootstrap needs n_boot >= 2, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap level must be in (0, 1), got {level}")
    return percentile_interval(bootstrap_values(estimator, x, key, n_boot), level)
