"""The torch-free PyTorch-layout converter: safetensors reading (fp32/fp16/bf16, sharded) and
name mapping, checked against diffusers' own converter and round trips."""

import json

import jax
import ml_dtypes
import numpy as np
import pytest

from jaxsteer.models.nn import UNet2DConditionModel, UNetConfig
from jaxsteer.models.nn.convert import (
    find_weights,
    flax_to_pt,
    pt_to_flax,
    read_safetensors,
    read_state_dict,
    write_safetensors,
)
from jaxsteer.models.tiny import random_params

CFG = UNetConfig.from_diffusers({
    "sample_size": 8, "block_out_channels": [32, 64], "layers_per_block": 1,
    "cross_attention_dim": 32, "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]})


def _unet_params():
    init = UNet2DConditionModel(CFG).init_weights
    return random_params(init, jax.random.key(0), 0), jax.eval_shape(init, jax.random.key(0))


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


def test_unet_round_trip_and_names():
    params, shapes = _unet_params()
    state = flax_to_pt(params)
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight" in state
    assert "time_embedding.linear_1.weight" in state
    assert state["conv_in.weight"].shape == (32, 4, 3, 3)  # OIHW
    _assert_trees_equal(pt_to_flax(state, shapes), params)


@pytest.mark.parametrize("projection", [False, True])
def test_clip_loads_with_or_without_the_wrapper_name(projection):
    # transformers 4 saves CLIPTextModel as "text_model.embeddings...", transformers 5 (5.17
    # on the H200, 2026-12-02) as "embeddings..."; WithProjection keeps "text_projection"
    from jaxsteer.models.nn import CLIPTextConfig, CLIPTextModel
    cfg = {"vocab_size": 50, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
           "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
           "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "projection_dim": 24}
    init = CLIPTextModel(CLIPTextConfig.from_transformers(cfg, projection)).init_weights
    params, shapes = random_params(init, jax.random.key(1), 0), jax.eval_shape(init,
                                                                               jax.random.key(1))
    state = flax_to_pt(params)
    assert "text_model.embeddings.token_embedding.weight" in state
    bare = {k.removeprefix("text_model."): v for k, v in state.items()}
    assert "embeddings.token_embedding.weight" in bare
    assert ("text_projection.weight" in bare) == projection
    _assert_trees_equal(pt_to_flax(state, shapes), params)
    _assert_trees_equal(pt_to_flax(bare, shapes), params)


def test_matches_diffusers_converter():
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, "FlaxUNet2DConditionModel"):
        pytest.skip("diffusers without Flax classes")
    from diffusers.models.modeling_flax_pytorch_utils import convert_pytorch_state_dict_to_flax


    class _Tensor:  # the .numpy() diffusers' converter calls on torch tensors
        def __init__(self, a):
            self.a = a

        def numpy(self):
            return self.a

    class _Shapes:  # a Flax model stand-in: the converter needs only parameter shapes
        def init_weights(self, key):
            return jax.eval_shape(ref.init_weights, key)

    params, shapes = _unet_params()
    ref = diffusers.FlaxUNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
        attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    state = flax_to_pt(params)
    theirs = convert_pytorch_state_dict_to_flax({k: _Tensor(v) for k, v in state.items()},
                                                _Shapes())
    _assert_trees_equal(pt_to_flax(state, shapes), jax.tree.map(np.asarray, dict(theirs)))


def test_errors_name_the_tensor():
    params, shapes = _unet_params()
    state = flax_to_pt(params)
    bad = dict(state, **{"conv_in.weight": state["conv_in.weight"][:, :3]})
    with pytest.raises(ValueError, match="conv_in.weight"):
        pt_to_flax(bad, shapes)
    with pytest.raises(ValueError, match="missing"):
        pt_to_flax({k: v for k, v in state.items() if k != "conv_out.bias"}, shapes)
    with pytest.raises(ValueError, match="match no parameter"):
        pt_to_flax(dict(state, extra=np.zeros(3)), shapes)
    pt_to_flax(dict(state, **{"text_model.embeddings.position_ids": np.zeros(3)}), shapes)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_safetensors_dtypes_and_shards(tmp_path, dtype):
    params, shapes = _unet_params()
    state = {k: v.astype(dtype) for k, v in flax_to_pt(params).items()}
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        write_safetensors(tmp_path / shard, {k: state[k] for k in keys})
    weight_map = {k: s for s, keys in shards.items() for k in keys}
    (tmp_path / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    files = find_weights(tmp_path, "diffusion_pytorch_model")
    assert len(files) == 2
    loaded = read_state_dict(files)
    assert loaded["conv_in.weight"].dtype == np.dtype(dtype)
    tree = pt_to_flax(loaded, shapes)
    assert jax.tree.leaves(tree)[0].dtype == np.float32
    _assert_trees_equal(tree, jax.tree.map(lambda a: a.astype(dtype), params))


def test_reads_files_safetensors_writes(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    a = {"x": np.arange(6, dtype=np.float16).reshape(2, 3), "y": np.ones(4, np.float32)}
    safetensors_numpy.save_file(a, tmp_path / "a.safetensors")
    b = read_safetensors(tmp_path / "a.safetensors")
    for k, v in a.items():
        np.testing.assert_array_equal(v, b[k])
    write_safetensors(tmp_path / "b.safetensors", a)
    c = safetensors_numpy.load_file(tmp_path / "b.safetensors")
    for k, v in a.items():
        np.testing.assert_array_equal(v, c[k])


def test_load_unet_reads_a_variant_and_refuses_pickle(tmp_path):
    from jaxsteer.errors import UserError
    from jaxsteer.models.nn.load import load_unet

    params, _ = _unet_params()
    cfg = {"_class_name": "UNet2DConditionModel", "sample_size": 8, "block_out_channels": [32, 64],
           "layers_per_block": 1, "cross_attention_dim": 32, "attention_head_dim": 8,
           "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    state = {k: v.astype(np.float16) for k, v in flax_to_pt(params).items()}
    write_safetensors(tmp_path / "diffusion_pytorch_model.fp16.safetensors", state)
    with pytest.raises(UserError, match="no weights"):
        load_unet(tmp_path)  # without the variant there is nothing to read
    module, loaded = load_unet(tmp_path, variant="fp16")
    assert module.config == CFG and not module.config.gelu_approximate
    _assert_trees_equal(loaded, jax.tree.map(lambda a: a.astype(np.float16), params))
    (tmp_path / "diffusion_pytorch_model.fp16.safetensors").unlink()
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UserError, match="allow-pickle"):
        load_unet(tmp_path)
