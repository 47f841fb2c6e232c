"""The mesh: sizes from ints (data -1 = the rest), a clear error when devices are missing."""

import jax
import pytest

from jaxsteer import sharding
from jaxsteer.errors import UserError


def test_make_mesh_sizes_and_errors():
    assert dict(sharding.make_mesh().shape) == {"data": jax.local_device_count(), "model": 1}
    assert dict(sharding.make_mesh(model=2).shape) == {"data": 4, "model": 2}  # 8 test devices
    assert dict(sharding.make_mesh(data=3).shape) == {"data": 3, "model": 1}
    with pytest.raises(UserError, match="needs 16 devices"):
        sharding.make_mesh(data=8, model=2)
    with pytest.raises(UserError, match="positive"):
        sharding.make_mesh(model=0)
