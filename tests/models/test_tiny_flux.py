"""`jaxsteer.models.tiny_flux`: the T5-style character tokenizer, the sharded weight files and
the two schedulers of the tiny Flux pipeline (loading it is tests/models/test_flux.py's)."""

import json

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxsteer.models.nn.convert import find_weights, read_state_dict
from jaxsteer.models.tiny_flux import DEV_SCHEDULER, SCHNELL_SCHEDULER, _write, write_t5_tokenizer


def test_the_t5_tokenizer_starts_each_word_with_a_space_piece_and_ends_with_eos(tmp_path):
    from tokenizers import Tokenizer
    n = write_t5_tokenizer(tmp_path / "tok", max_length=24)
    tok = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    assert n == tok.get_vocab_size() == 4 + 2 * 42             # specials, ▁, ▁x and x per char
    assert tok.encode("Ab c").tokens == ["\u2581a", "b", "\u2581c", "</s>"]
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("</s>") == 1
    cfg = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert cfg["model_max_length"] == 24 and cfg["pad_token"] == "<pad>"


class _Two(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3, name="b")(nn.Dense(5, name="a")(x))

    def init_weights(self, key):
        return self.init(key, jnp.zeros((1, 4)))["params"]


def test_sharded_weights_have_an_index_naming_every_tensor_once(tmp_path):
    _write(tmp_path / "one", {"k": 1}, _Two(), 0, "model")
    _write(tmp_path / "two", {"k": 1}, _Two(), 0, "model", shards=3)
    assert json.loads((tmp_path / "two" / "config.json").read_text()) == {"k": 1}
    index = json.loads((tmp_path / "two" / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    single = read_state_dict(find_weights(tmp_path / "one", "model"))
    sharded = read_state_dict(find_weights(tmp_path / "two", "model"))
    assert set(index["weight_map"]) == set(single) == set(sharded) == {
        "a.weight", "a.bias", "b.weight", "b.bias"}
    for k in single:                                       # the same draws, split over files
        np.testing.assert_array_equal(single[k], sharded[k])
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in single.values())
    assert single["a.weight"].shape == (5, 4)              # PyTorch layout: [out, in]


def test_dev_differs_from_schnell_only_in_its_shift():
    diff = {k for k in DEV_SCHEDULER if DEV_SCHEDULER[k] != SCHNELL_SCHEDULER.get(k)}
    assert diff == {"shift", "use_dynamic_shifting"} and SCHNELL_SCHEDULER["shift"] == 1.0
