"""Shard checksums: recorded at write time, damaged shards named on read and made again."""

import json

import numpy as np
import pytest

from jaxsteer import store
from jaxsteer.errors import UserError


def make(folder, shards=3):
    s = store.ShardStore.open(folder, "gradients", {"x": 1}, {}, shard_size=2, total=2 * shards)
    with s.writing():
        for i in s.todo():
            s.write_shard(i, {"grads": np.full((2, 4), i, np.float32)})
    return s


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_shard_has_its_sha256_in_the_manifest(tmp_path):
    s = make(tmp_path / "g")
    sums = store.read_manifest(tmp_path / "g")["checksums"]
    assert sorted(sums) == ["0", "1", "2"]
    assert sums["1"] == store.records.sha256(s.shard_path(1).read_bytes())


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_shard_is_refused_by_name_and_made_again(tmp_path, damage, capsys):
    s = make(tmp_path / "g")
    path = s.shard_path(1)
    if damage == "flip":     # same size, one bit: only a checksum sees it
        flip_last_byte(path)
    else:
        path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(UserError, match=f"{path} is damaged"):
        store.open_existing(tmp_path / "g", "gradients").read()
    again = store.open_existing(tmp_path / "g", "gradients")
    assert again.todo() == [1]
    assert "000001.safetensors is damaged" in capsys.readouterr().err
    make(tmp_path / "g")  # a resume makes it again
    np.testing.assert_array_equal(
        store.open_existing(tmp_path / "g", "gradients").read()["grads"][2:4], 1)


def test_a_store_without_checksums_is_read_with_a_warning(tmp_path, capsys):
    make(tmp_path / "g")
    path = tmp_path / "g" / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["checksums"]
    path.write_text(json.dumps(manifest))
    data = store.open_existing(tmp_path / "g", "gradients").read()
    assert data["grads"].shape == (6, 4)
    assert "carry no checksum" in capsys.readouterr().err
    shard = tmp_path / "g" / "shards" / "000002.safetensors"
    shard.write_bytes(shard.read_bytes()[:30])  # truncated: still caught, it no longer parses
    with pytest.raises(UserError, match="000002.safetensors is damaged"):
        store.open_existing(tmp_path / "g", "gradients").read()


def test_a_lock_file_does_not_make_a_folder_foreign(tmp_path):
    from jaxsteer import runlock
    with runlock.hold(tmp_path / "g"):
        pass
    make(tmp_path / "g")
