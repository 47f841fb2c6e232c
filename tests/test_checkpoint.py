"""Checkpoint tests: bit-exact round trips; damaged or incompatible checkpoints are UserErrors."""

import json
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer import checkpoint
from jaxsteer.decompose import DirectionSet, SAEConfig, pca
from jaxsteer.decompose.sae import init_state
from jaxsteer.errors import UserError

META = {"model": "tiny-sd", "embed_dim": 16, "token": "monster", "prompt": "a monster"}


@pytest.fixture(scope="module")
def pca_set() -> DirectionSet:
    x_nd = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    return pca(x_nd, k=4, method="cov").replace_metadata(**META)


@pytest.fixture(scope="module")
def sae_state():
    x_nd = jnp.asarray(np.random.default_rng(1).normal(size=(32, 16)), jnp.float32)
    return init_state(SAEConfig(k=2, epochs=1), x_nd, 10)


@pytest.fixture
def saved(pca_set, tmp_path):
    return checkpoint.save(pca_set, tmp_path / "ck")


def assert_same(a: DirectionSet, b: DirectionSet) -> None:
    for a_leaf, b_leaf in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(a_leaf).dtype == np.asarray(b_leaf).dtype
        np.testing.assert_array_equal(np.asarray(a_leaf), np.asarray(b_leaf))


def test_pca_round_trip_is_bit_exact(pca_set, saved):
    loaded = checkpoint.load(saved, expect={"embed_dim": 16, "model": "tiny-sd",
                                            "token": "monster"})
    assert_same(pca_set, loaded)
    assert loaded.metadata == json.loads(json.dumps(pca_set.metadata))
    assert loaded.significant_count() == pca_set.significant_count()


def test_sae_round_trip_with_train_state(sae_state, tmp_path):
    params = sae_state.params
    ds = DirectionSet(directions=params.w_dec[:3], mean=params.b_pre, density=jnp.ones(3) / 2,
                      sae=params, metadata={"method": "sae"})
    path = checkpoint.save(ds, tmp_path / "sae", train_state=sae_state, extras={"x.png": b"png"})
    assert_same(ds, checkpoint.load(path))
    restored = checkpoint.load_train_state(path)
    assert jax.tree.structure(restored) == jax.tree.structure(sae_state)
    for a, b in zip(jax.tree.leaves(sae_state), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (path / "x.png").read_bytes() == b"png"


def test_no_train_state_is_user_error(saved):
    with pytest.raises(UserError, match="no SAE training state"):
        checkpoint.load_train_state(saved)


def test_other_embedding_size_names_every_mismatch(saved):
    with pytest.raises(UserError) as e:
        checkpoint.load(saved, expect={"embed_dim": 2048, "model": "sdxl", "token": "monster"})
    msg = str(e.value)
    assert "embed_dim: the checkpoint has 16, expected 2048" in msg
    assert "model: the checkpoint has 'tiny-sd', expected 'sdxl'" in msg
    assert "token" not in msg  # it matches


def largest_data_file(path):
    """The array data file Orbax reads (arrays/d/<hash>; ocdbt.process_0/ holds a copy)."""
    return max((p for p in (path / "arrays" / "d").iterdir() if p.is_file()),
               key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_checkpoint_is_user_error(saved, damage):
    victim = largest_data_file(saved)
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        victim.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    else:
        victim.unlink()
    word = {"truncate": "truncated", "flip": "corrupted", "delete": "missing"}[damage]
    with pytest.raises(UserError, match=f"damaged: .*{word}"):
        checkpoint.load(saved)


def test_damage_behind_a_consistent_file_list_still_is_user_error(saved):
    # Damage that happened before the file list was written: Orbax's own failure is wrapped.
    # (Orbax's array index, not a data file: a damaged data file read through TensorStore also
    # leaves an "Event loop is closed" warning behind, which the file list exists to avoid.)
    victim = saved / "arrays" / "_METADATA"
    data = victim.read_bytes()[:-20]
    victim.write_bytes(data)
    listing = json.loads((saved / checkpoint.FILES).read_text())
    listing[victim.relative_to(saved).as_posix()] = [len(data), zlib.crc32(bytes(data))]
    (saved / checkpoint.FILES).write_text(json.dumps(listing))
    with pytest.raises(UserError, match="corrupted"):
        checkpoint.load(saved)


def test_missing_and_foreign_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "nothing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="not a jaxsteer checkpoint"):
        checkpoint.load(tmp_path / "folder")


def test_interrupted_write_is_named(tmp_path):
    (tmp_path / ".ck.jaxsteer-new").mkdir()  # what a killed save leaves behind
    with pytest.raises(UserError, match="interrupted write"):
        checkpoint.load(tmp_path / "ck")


def test_overwrite_is_explicit_and_atomic(pca_set, saved):
    with pytest.raises(UserError, match="exists"):
        checkpoint.save(pca_set, saved)
    other = pca_set.replace(mean=pca_set.mean + 1)
    checkpoint.save(other, saved, overwrite=True)
    assert_same(other, checkpoint.load(saved))
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ck"]  # no staging left over


def test_extras_may_not_clash(pca_set, tmp_path):
    with pytest.raises(ValueError, match="clash"):
        checkpoint.save(pca_set, tmp_path / "ck", extras={"meta": b""})
