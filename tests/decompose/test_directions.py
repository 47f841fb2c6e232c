"""`jaxsteer.decompose.directions`: the DirectionSet pytree and its row helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.decompose.directions import (
    SIGNIFICANCE_FACTOR,
    DirectionSet,
    as_float,
    fix_signs,
    significant_count,
    unit_rows,
)


def test_unit_rows_normalises_each_row_and_leaves_zero_rows_zero():
    x = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
    got = np.asarray(unit_rows(jnp.asarray(x)))
    np.testing.assert_allclose(got[0], [0.6, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(got[1], 0.0)                 # no NaN from a zero gradient
    np.testing.assert_allclose(got[2], np.full(3, 3 ** -0.5), rtol=1e-6)
    assert unit_rows(jnp.asarray(x, jnp.bfloat16)).dtype == jnp.bfloat16


def test_fix_signs_makes_the_largest_magnitude_entry_positive():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((6, 9)).astype(np.float32)
    got = np.asarray(fix_signs(jnp.asarray(d)))
    pivot = np.argmax(np.abs(d), axis=1)
    assert np.all(got[np.arange(6), pivot] > 0)
    np.testing.assert_array_equal(np.abs(got), np.abs(d))       # only whole rows flip
    np.testing.assert_array_equal(got, np.asarray(fix_signs(jnp.asarray(-d))))  # sign-free
    np.testing.assert_array_equal(got, np.asarray(fix_signs(jnp.asarray(got))))  # idempotent


def test_as_float_casts_to_float32():
    assert as_float(np.arange(3)).dtype == jnp.float32
    assert as_float(jnp.ones(2, jnp.bfloat16)).dtype == jnp.float32
    assert as_float([1.5, 2.5]).tolist() == [1.5, 2.5]


def test_significance_threshold_is_two_and_a_half_over_d():
    d = 40
    at = SIGNIFICANCE_FACTOR / d                               # 0.0625: exactly at is not above
    assert significant_count([0.5, at, np.nextafter(at, 1.0), 0.01], d) == 2
    assert significant_count(jnp.asarray([0.2, 0.1]), 4) == 0  # 2.5 / 4 = 0.625
    with pytest.raises(ValueError, match="dim must be positive"):
        significant_count([0.5], -3)


def test_a_direction_set_is_a_pytree_with_static_metadata():
    ds = DirectionSet(directions=jnp.eye(3, 5), mean=jnp.zeros(5),
                      explained_variance_ratio=jnp.asarray([0.6, 0.3, 0.1]),
                      metadata={"method": "pca", "prompt": "a dog"})
    assert (ds.k, ds.dim, ds.method) == (3, 5, "pca")
    leaves = jax.tree.leaves(ds)
    assert len(leaves) == 3 and all(isinstance(x, jax.Array) for x in leaves)  # None fields skip
    doubled = jax.jit(lambda s: s.replace(directions=2 * s.directions))(ds)
    assert doubled.metadata == ds.metadata                      # carried through jit as static
    np.testing.assert_array_equal(doubled.directions, 2 * np.eye(3, 5))
    # 2.5 / 5 = 0.5: only the first ratio is above it.
    assert ds.significant_count() == 1


def test_replace_metadata_merges_into_a_copy():
    ds = DirectionSet(directions=jnp.eye(2, 4), mean=jnp.zeros(4), metadata={"method": "sae",
                                                                            "token": "dog"})
    new = ds.replace_metadata(token="cat", seed=7)
    assert new.metadata == {"method": "sae", "token": "cat", "seed": 7}
    assert ds.metadata == {"method": "sae", "token": "dog"}     # the original is unchanged
    hand_built = DirectionSet(directions=jnp.eye(2, 4), mean=jnp.zeros(4))
    assert hand_built.method == "unknown" and hand_built.significant_count() == 0


def test_the_notebook_view_of_an_sae_set_lists_firing_densities():
    ds = DirectionSet(directions=jnp.eye(2, 4), mean=jnp.zeros(4),
                      density=jnp.asarray([0.25, 0.125]), metadata={"method": "<sae>"})
    view = ds._repr_html_()
    assert "&lt;sae&gt;" in view and "<sae>" not in view        # metadata is escaped
    assert "firing density" in view and "0.25" in view and "0.125" in view
    assert "<svg" not in view                                  # no spectrum without EV ratios
