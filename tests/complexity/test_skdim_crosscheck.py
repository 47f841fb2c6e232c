"""jaxsteer's intrinsic-dimension estimators against scikit-dimension on planted data.

The fixtures (tests/fixtures/skdim, written by scripts/make_skdim_fixtures.py with
scikit-dimension 0.5) hold four planted datasets and scikit-dimension's estimates of them, so
this runs without it installed: a change of definition in either (neighbour count, the k - 1
factor, the discarded TwoNN tail, the cumulative-variance rule) shows up here.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.complexity.local import mle_dimension, twonn_dimension
from jaxsteer.complexity.spectral import (
    components_for_variance,
    explained_variance_ratio,
    parallel_analysis,
    participation_ratio,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "skdim"
DATA = np.load(FIXTURES / "planted.npz")
REF = json.loads((FIXTURES / "skdim.json").read_text())["estimates"]


@pytest.mark.parametrize("name", sorted(REF))
def test_local_estimators_equal_scikit_dimensions(name):
    x, ref = jnp.asarray(DATA[name]), REF[name]
    for k in (5, 10, 20):
        assert float(mle_dimension(x, k)) == pytest.approx(ref[f"mle_k{k}"], rel=1e-4), k
    assert float(twonn_dimension(x, 0.1)) == pytest.approx(ref["twonn"], rel=1e-4)


@pytest.mark.parametrize("name", sorted(REF))
def test_spectral_counts_equal_scikit_dimensions(name):
    x, ref = jnp.asarray(DATA[name]), REF[name]
    ratio = explained_variance_ratio(x)
    assert int(components_for_variance(ratio, 0.9)) == ref["pca_90"]
    assert int(components_for_variance(ratio, 0.95)) == ref["pca_95"]
    assert float(participation_ratio(ratio)) == pytest.approx(ref["participation_ratio"],
                                                              rel=1e-4)
    # Different random nulls, the same count where the spectrum has a clear gap (and 0 on
    # independent columns, which are their own permutation null).
    assert int(parallel_analysis(x, jax.random.key(0), n_null=100)[0]) == ref["parallel_analysis"]


def test_the_planted_answers_are_what_the_data_was_built_with():
    """The fixtures mean something: the local estimators find the planted dimensions."""
    assert REF["linear3_in12"]["mle_k10"] == pytest.approx(3, abs=0.2)
    assert REF["sphere4_in10"]["twonn"] == pytest.approx(4, abs=0.2)
    assert REF["swissroll2_in8"]["mle_k10"] == pytest.approx(2, abs=0.1)
    assert REF["swissroll2_in8"]["pca_95"] == 3   # a curled 2-d sheet fills three linear axes
