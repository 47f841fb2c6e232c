"""`jaxsteer.models.nn.load`: the Flax msgpack path (the bundled shapes model's format), the
choice of projection from the config, casting, and the errors on missing or wrong weights.
(The safetensors variant and pickle refusal are tests/models/nn/test_convert.py's.)"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.serialization import msgpack_serialize

from jaxsteer.errors import UserError
from jaxsteer.models.nn.clip import CLIPTextConfig, CLIPTextModel
from jaxsteer.models.nn.load import _cast, load_clip
from jaxsteer.models.tiny import _clip_config, random_params


def _clip_folder(tmp_path, architecture="CLIPTextModel", with_projection=False):
    cfg = _clip_config(vocab=20, width=16, max_tokens=8, architecture=architecture)
    module = CLIPTextModel(CLIPTextConfig.from_transformers(cfg, with_projection))
    params = random_params(module.init_weights, jax.random.key(0), 0)
    sub = tmp_path / "text_encoder"
    sub.mkdir()
    (sub / "config.json").write_text(json.dumps(cfg))
    (sub / "flax_model.msgpack").write_bytes(msgpack_serialize(jax.device_get(params)))
    return sub, params


def test_flax_msgpack_loads_back_the_same_tree_in_the_asked_dtype(tmp_path):
    sub, params = _clip_folder(tmp_path)
    module, loaded = load_clip(sub, jnp.bfloat16)
    assert module.config.projection_dim is None         # the config names CLIPTextModel
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        assert b.dtype == jnp.bfloat16
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype(jnp.bfloat16))


def test_the_projection_comes_from_the_configs_architectures(tmp_path):
    sub, _ = _clip_folder(tmp_path, "CLIPTextModelWithProjection", with_projection=True)
    module, loaded = load_clip(sub)
    assert module.config.projection_dim == 16 and "text_projection" in loaded
    with pytest.raises(UserError, match="does not hold the parameters its config describes"):
        load_clip(sub, with_projection=False)           # the file has one matrix too many


def test_a_folder_without_weights_or_config_says_so(tmp_path):
    sub, _ = _clip_folder(tmp_path)
    (sub / "flax_model.msgpack").unlink()
    with pytest.raises(UserError, match="no weights found in .*text_encoder"):
        load_clip(sub)
    (sub / "config.json").unlink()
    with pytest.raises(UserError, match="config.json is missing"):
        load_clip(sub)


def test_a_damaged_msgpack_names_the_file(tmp_path):
    sub, _ = _clip_folder(tmp_path)
    data = (sub / "flax_model.msgpack").read_bytes()
    (sub / "flax_model.msgpack").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read the weights in .*flax_model.msgpack"):
        load_clip(sub)


def test_cast_changes_floats_only():
    tree = {"w": np.ones(2, np.float32), "ids": np.arange(3, dtype=np.int32), "h": np.float16(2)}
    out = _cast(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["h"].dtype == jnp.bfloat16
    assert out["ids"].dtype == jnp.int32 and out["ids"].tolist() == [0, 1, 2]
