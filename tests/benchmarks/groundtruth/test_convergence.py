"""`groundtruth.convergence`: subspace overlap and convergence, the round robin over prompts and
the tuning variants, on planted data (no model runs here)."""

import jax
import numpy as np
import pytest

from jaxsteer.benchmarks.groundtruth import convergence as conv
from jaxsteer.benchmarks.groundtruth import stats
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig, estimate_one


def _orthonormal(rng, k, d):
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T


def test_overlap_of_planted_bases():
    rng = np.random.default_rng(0)
    v = _orthonormal(rng, 4, 20)
    assert conv.overlap(v, v) == pytest.approx((1.0, 0.0))
    assert conv.overlap(v[:2], v[2:]) == pytest.approx((0.0, 1.0))
    # The subset recovers half the reference and adds nothing: spanned 0.5, spurious 0.
    assert conv.overlap(v, v[:2]) == pytest.approx((0.5, 0.0))
    assert conv.overlap(v[:2], v) == pytest.approx((1.0, 0.5))
    assert conv.overlap(v[:0], v) == (None, None)


def test_convergence_recovers_a_planted_subspace():
    rng = np.random.default_rng(1)
    basis = _orthonormal(rng, 3, 40)                              # 3 strong directions
    x = (rng.standard_normal((400, 3)) * [5.0, 4.0, 3.0]) @ basis
    x = (x + 0.01 * rng.standard_normal((400, 40))).astype(np.float32)
    cfg = ComplexityConfig(n_boot_spectral=4, vaease=VAEaseConfig(enabled=False))
    v = conv.significant_basis(jax.numpy.asarray(x), cfg)
    assert v.shape == (3, 40) and conv.overlap(basis, v)[0] == pytest.approx(1.0, abs=1e-4)
    table = conv.convergence(jax.numpy.asarray(x), (50, 1000), jax.random.key(0), cfg,
                             "subspace_size")
    assert [p["n"] for p in table["points"]] == [50, 400]   # N above the reference dropped
    assert table["k_reference"] == 3
    for p in table["points"]:
        assert p["k"] == 3 and p["spanned"] > 0.999 and p["spurious"] < 1e-3
        assert p["estimate"]["value"] == 3.0
    first = table["points"][0]
    # The estimate is `estimate_one`'s on the first n rows with the point's key.
    ref = estimate_one(x[:50], jax.random.fold_in(jax.random.key(0), 50), cfg, "subspace_size")
    assert first["estimate"] == {"value": ref["value"], "ci": ref["ci"]}


def test_round_robin_spans_the_counts_first():
    prompts = ("a small red circle in the middle", "a large blue square at the top left",
               "a red circle", "a green triangle", "a shape")
    assert conv.round_robin(prompts, 3) == ("a small red circle in the middle", "a red circle",
                                            "a shape")
    assert len(conv.round_robin(prompts, 10)) == 5


def test_variants_rank_every_choice_on_the_same_gradients():
    rng = np.random.default_rng(2)
    records = []
    for n_free in (0, 1, 2, 3):  # planted: the gradient cloud's rank grows with the count
        basis = _orthonormal(rng, n_free + 1, 32)
        g = (rng.standard_normal((60, n_free + 1)) * np.linspace(3.0, 2.0, n_free + 1) @ basis
             + 0.01 * rng.standard_normal((60, 32)))
        values = conv.variant_values({"word": g[:, None].astype(np.float32)}, jax.random.key(0),
                                     ComplexityConfig(mle_k=5))
        assert set(values) == {"word/none", "word/l2"}
        assert values["word/none"]["subspace_size_fixed"] == n_free + 1
        assert values["word/none"]["subspace_size_n_dependent"] == n_free + 1
        records.append({"prompt": str(n_free), "n_free": n_free, "variants": values})
    table = stats.variant_table(records)
    assert table["word/none"]["subspace_size_fixed"] == pytest.approx(1.0)
    assert table["word/none"]["pca_95"] == pytest.approx(1.0)
    assert "subspace_size" not in table["word/l2"]       # named by its threshold mode instead

