"""jaxsteer.complexity.intervals: bootstrap intervals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.complexity import intervals
from tests.complexity.planted import N


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
