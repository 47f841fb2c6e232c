"""SAE tests: a planted sparse dictionary is recovered; the step, config and resume behave."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import checkpoint
from jaxsteer.decompose import SAEConfig, sae_step, train_sae
from jaxsteer.decompose.planted import planted_sparse
from jaxsteer.decompose.sae import init_state
from jaxsteer.errors import UserError

# Tiny problem for the fast behaviour tests (one shared compile of the step).
TINY = SAEConfig(k=2, batch_size=64, epochs=4, patience=0)


@pytest.fixture(scope="module")
def tiny_data():
    x_nd, _ = planted_sparse(1, 512, 16, 16, 2)
    return np.asarray(x_nd)


def test_recovers_planted_dictionary():
    # 64 unit atoms in 64 dims, 4 active per sample with positive coefficients; the SAE has the
    # authors' shape (k = active atoms, dictionary size = d) and the default learning rate.
    x_nd, atoms_ad = planted_sparse(0, 4096, 64, 64, 4)
    cfg = SAEConfig(k=4, batch_size=256, epochs=40)
    ds, state = train_sae(x_nd, cfg)
    m = ds.metadata["sae_metrics"]
    cos_ak = np.asarray(atoms_ad) @ np.asarray(ds.directions).T
    recovered = float(np.mean(cos_ak.max(axis=1) >= 0.9))
    assert recovered >= 0.9, (recovered, m)
    assert m["dead_frac"] < 0.05, m
    assert m["fvu"] < 0.1 and abs(m["explained_variance"] - (1 - m["fvu"])) < 1e-6
    assert m["l0"] <= 4.0
    assert ds.sae.w_dec.shape == (64, 64) and ds.method == "sae"
    np.testing.assert_allclose(np.linalg.norm(ds.directions, axis=1), 1.0, atol=1e-5)
    # Directions are sorted by firing density, all within (1e-6, 1).
    density = np.asarray(ds.density)
    assert np.all(np.diff(density) <= 0) and np.all((density > 1e-6) & (density < 1))
    assert int(state.step) == len(ds.metadata["sae_history"]) * (4096 // 256)


def test_step_keeps_unit_decoder_rows_and_reports_metrics(tiny_data):
    x_nd = jnp.asarray(tiny_data)
    state = init_state(TINY, x_nd, 32)
    state, metrics = sae_step(state, x_nd[:64])
    assert set(metrics) == {"fvu", "aux", "l0", "dead_frac"}
    assert int(state.step) == 1
    np.testing.assert_allclose(np.linalg.norm(state.params.w_dec, axis=1), 1.0, atol=1e-5)
    assert float(metrics["l0"]) <= TINY.k


def test_training_is_deterministic_and_resumes_bit_exactly(tiny_data, tmp_path):
    full_ds, full = train_sae(tiny_data, TINY)
    half_ds, half = train_sae(tiny_data, TINY, max_epochs=2)
    assert int(half.step) == int(full.step) // 2
    checkpoint.save(half_ds, tmp_path / "half", train_state=half)
    resumed = checkpoint.load_train_state(tmp_path / "half")
    _, resumed = train_sae(tiny_data, state=resumed)  # cfg comes from the state
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again_ds, _ = train_sae(tiny_data, TINY)
    np.testing.assert_array_equal(full_ds.directions, again_ds.directions)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 0}, "k must be >= 1"), ({"k": 8, "dict_size": 4}, "dict_size"),
    ({"lr": -1.0}, "lr"), ({"log10_density_range": (0.0, -6.0)}, "density"),
    ({"batch_size": 0}, "batch_size")])
def test_config_validation(kwargs, match):
    with pytest.raises(UserError, match=match):
        SAEConfig(**kwargs)


def test_defaults_document_the_authors_values():
    cfg = SAEConfig()
    assert (cfg.k, cfg.dict_size, cfg.normalise, cfg.warmup_steps, cfg.epochs,
            cfg.batch_size, cfg.seed) == (32, None, True, 1000, 20, 512, 31)
    assert cfg.latents(2048) == 2048
    lr_help = {f.name: f.metadata["help"] for f in dataclasses.fields(SAEConfig)}["lr"]
    assert "3e-5" in lr_help
    assert cfg.peak_lr(2048) == pytest.approx(0.08 / 2048**0.5)


def test_k_larger_than_dictionary_is_user_error(tiny_data):
    with pytest.raises(UserError, match="exceeds the dictionary"):
        train_sae(tiny_data, SAEConfig(k=32, epochs=1))  # d = 16 latents < k
