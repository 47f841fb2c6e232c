"""`jaxsteer.train_state`: a trainer's state comes back exactly, in its template's structure, and
a failed write leaves the previous file whole."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsteer.shapes.train import TrainState
from jaxsteer.train_state import load_state, save_state


def _state(seed: int) -> TrainState:
    params = {"w": jax.random.normal(jax.random.key(seed), (3, 4)), "b": jnp.zeros(4)}
    return TrainState(step=jnp.int32(seed), params=params, ema=params,
                      opt_state=optax.adam(1e-3).init(params))


def test_a_state_round_trips_exactly_in_its_templates_structure(tmp_path):
    saved = _state(7)
    save_state(tmp_path / "state.msgpack", saved)
    back = load_state(tmp_path / "state.msgpack", _state(0))
    assert jax.tree.structure(back) == jax.tree.structure(saved)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(saved), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(back.step) == 7 and isinstance(back.params["w"], jax.Array)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "state.msgpack"
    save_state(path, _state(1))
    before = path.read_bytes()

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        save_state(path, _state(2))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.msgpack"]   # no temporary left
