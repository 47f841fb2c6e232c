import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.diversity import mean_pairwise_cosine_distance, random_offsets, vendi_score


def test_vendi_of_identical_items_is_one_and_of_orthogonal_items_is_n():
    same = jnp.ones((6, 10))
    np.testing.assert_allclose(float(vendi_score(same)), 1.0, rtol=1e-5)
    ortho = jnp.eye(6, 10)
    np.testing.assert_allclose(float(vendi_score(ortho)), 6.0, rtol=1e-5)


def test_pairwise_cosine_distance_known_values():
    assert float(mean_pairwise_cosine_distance(jnp.ones((4, 3)))) == pytest.approx(0.0, abs=1e-6)
    assert float(mean_pairwise_cosine_distance(jnp.eye(4))) == pytest.approx(1.0, abs=1e-6)
    opposite = jnp.asarray([[1.0, 0.0], [-1.0, 0.0]])
    assert float(mean_pairwise_cosine_distance(opposite)) == pytest.approx(2.0, abs=1e-6)


def test_random_offsets_have_the_drawn_strength_and_use_the_directions():
    dirs = jnp.eye(5, 12)
    offs = random_offsets(jax.random.key(0), dirs, 200, (30.0, 40.0))
    norms = np.linalg.norm(np.asarray(offs), axis=1)
    assert norms.min() >= 30 - 1e-4 and norms.max() <= 40 + 1e-4
    assert np.allclose(np.asarray(offs)[:, 5:], 0)           # stays in the directions' span
    assert len({int(np.argmax(np.abs(o))) for o in np.asarray(offs)}) == 5  # all get drawn
    mixed = random_offsets(jax.random.key(0), dirs, 50, (1.0, 1.0), mix=3)
    assert np.all((np.abs(np.asarray(mixed)) > 1e-6).sum(1) == 3)
    g = random_offsets(jax.random.key(1), dirs, 100, (1.0, 1.0), mode="gaussian",
                       spectrum_k=jnp.asarray([0.5, 0.3, 0.1, 0.05, 0.05]))
    spread = np.asarray(g)[:, :5].std(0)
    assert spread[0] > spread[4]                              # scaled by the spectrum
