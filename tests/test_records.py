"""Atomic writes honour the umask; --out is checked before any work."""

import os
import stat

import numpy as np
import pytest

from jaxsteer import records
from jaxsteer.errors import UserError


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)
    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_get_the_mode_of_the_umask_not_mkstemps_0600(tmp_path, umask, mask, mode):
    umask(mask)
    assert records.umask() == mask
    records.write_json(tmp_path / "a.json", {"x": 1})
    records.save_arrays(tmp_path / "b.safetensors", {"x": np.zeros(3)})
    for name in ("a.json", "b.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_arrays_returns_the_sha256_of_the_file(tmp_path):
    digest = records.save_arrays(tmp_path / "a.safetensors", {"x": np.arange(4.0)})
    assert digest == records.sha256((tmp_path / "a.safetensors").read_bytes())


def test_out_may_be_new_or_an_existing_folder(tmp_path):
    assert records.check_out(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert records.check_out(tmp_path) == tmp_path
    assert not (tmp_path / "new").exists()  # a check writes nothing


def test_out_that_is_a_file_or_under_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        records.check_out(tmp_path / "f")
    with pytest.raises(UserError, match="f is a file, not a folder"):
        records.check_out(tmp_path / "f" / "sub")
    with pytest.raises(UserError, match="is a folder, not a file"):
        records.check_out(tmp_path, file=True)


def test_read_only_out_is_one_clear_error(tmp_path, monkeypatch):
    # Tests run as root, whom chmod does not stop; a read-only file system answers access() so.
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if m == os.W_OK else real(p, m))
    with pytest.raises(UserError, match="is not writable"):
        records.check_out(tmp_path / "out")
