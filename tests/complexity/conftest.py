"""The complexity tests' shared set-up; their point clouds are in planted.py."""

import jax
import pytest


@pytest.fixture(autouse=True)
def strict_jax():
    """Our own maths must not lean on implicit rank or dtype promotion (ARCHITECTURE.md 7)."""
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield
