"""jaxsteer.complexity.vaease: the two-group split and per-sample active dimensions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.complexity import vaease
from tests.complexity.planted import VAE_CFG, union


def test_two_group_split():
    split = vaease.two_group_split
    assert int(split(jnp.asarray([0.01, 0.98, 0.02, 0.99, 1.0]), 0.5)) == 2
    assert int(split(jnp.asarray([0.001, 0.002, 0.003, 0.004]), 0.5)) == 4  # all open
    assert int(split(jnp.asarray([0.97, 0.99, 0.98, 1.0]), 0.5)) == 0  # all closed
    assert int(split(jnp.asarray([0.0, 0.0, 0.0, 0.1, 0.99]), 0.5)) == 4


def test_vaease_per_sample_dims_on_union_of_subspaces():
    x, true_n = union((2, 5), seed=0)
    counts = np.asarray(vaease.vaease_active_dims(x, jax.random.key(0), VAE_CFG))
    hit = np.abs(counts - true_n) <= 1
    assert hit.mean() >= 0.8, (hit.mean(), np.bincount(counts))
