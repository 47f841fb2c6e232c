"""Directions exported as plain safetensors and applied with NumPy equal jaxsteer's steering."""

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from jaxsteer import checkpoint, cli, interop
from jaxsteer.decompose.pca import pca
from jaxsteer.errors import UserError
from jaxsteer.steer import direction_rows, row_scale, steer_embeddings

ROWS = (2, 3, 5)


@pytest.fixture
def dirset(tmp_path):
    rng = np.random.default_rng(0)
    ds = pca(rng.standard_normal((40, len(ROWS) * 8)).astype(np.float32), k=4)
    ds = ds.replace(metadata=ds.metadata | {"model": "tiny", "prompt": "a b c d e f",
                                            "token": "d", "token_rows": list(ROWS),
                                            "embed_dim": 8})
    path = tmp_path / "directions_pca"
    checkpoint.save(ds, path)
    return ds, path


def test_export_writes_the_documented_layout(dirset, tmp_path):
    ds, path = dirset
    out = tmp_path / "d.safetensors"
    assert cli.main(["export", str(path), "--out", str(out)]) == 0
    tensors = load_file(out)             # any safetensors reader, no jaxsteer
    assert tensors["directions"].shape == (4, 3, 8)
    np.testing.assert_allclose(tensors["directions"].reshape(4, -1), np.asarray(ds.directions))
    np.testing.assert_allclose(tensors["explained_variance_ratio"],
                               np.asarray(ds.explained_variance_ratio))
    _, meta = interop.read_exported(out)
    assert meta["token_rows"] == list(ROWS) and meta["embed_dim"] == 8
    assert meta["model"] == "tiny" and meta["method"] == "pca"
    assert meta["strength_unit"] == "row_norm"


@pytest.mark.parametrize("relative", [True, False])
def test_numpy_steering_equals_jaxsteers(dirset, relative):
    ds, _ = dirset
    emb = np.random.default_rng(1).standard_normal((7, 8)).astype(np.float32)
    offsets = direction_rows(np.asarray(ds.directions), len(ROWS))
    scale = row_scale(emb, ROWS) if relative else 1.0
    ours = steer_embeddings(jnp.asarray(emb), ROWS, jnp.asarray(offsets[[1]]),
                            jnp.asarray([0.7 * scale]))[0]
    theirs = interop.steer_prompt_embeds(emb, np.asarray(ds.directions)[[1]], ROWS, [0.7],
                                         relative=relative)
    np.testing.assert_allclose(theirs, np.asarray(ours), rtol=1e-5, atol=1e-6)
    untouched = [r for r in range(7) if r not in ROWS]
    np.testing.assert_array_equal(theirs[untouched], emb[untouched])


def test_several_directions_sum_and_batches_scale_per_prompt(dirset):
    ds, _ = dirset
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((2, 7, 8)).astype(np.float32)
    dirs = np.asarray(ds.directions)[:3]
    both = interop.steer_prompt_embeds(emb, dirs, ROWS, [0.5, -1.0, 0.25])
    for b in range(2):
        one = emb[b]
        for i, a in enumerate([0.5, -1.0, 0.25]):
            one = interop.steer_prompt_embeds(one, dirs[i].reshape(3, 8), ROWS, a * (
                interop.row_norm(emb[b], ROWS) / interop.row_norm(one, ROWS)))
        np.testing.assert_allclose(both[b], one, rtol=1e-4, atol=1e-5)
    assert both.dtype == np.float32


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    from jaxsteer import records
    records.save_arrays(tmp_path / "x.safetensors", {"a": np.zeros(2, np.float32)})
    with pytest.raises(UserError, match="not a jaxsteer directions file"):
        interop.read_exported(tmp_path / "x.safetensors")
    (tmp_path / "y.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read"):
        interop.read_exported(tmp_path / "y.safetensors")
