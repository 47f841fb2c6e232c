"""`jaxsteer.models.tiny`: the host-side random weights and the character tokenizer of the tiny
pipelines (building and loading them is tests/models/test_sd.py's)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.models.tiny import random_params, write_char_tokenizer


def _init(key):
    return {"dense": {"kernel": jnp.zeros((256, 64)), "bias": jnp.zeros(64)},
            "norm": {"scale": jnp.zeros(64), "bias": jnp.zeros(64)},
            "embed": {"embedding": jnp.zeros((300, 32))},
            "half": {"kernel": jnp.zeros((128, 16), jnp.bfloat16)}}


def test_random_params_follow_the_initialisation_rule_by_leaf_name():
    p = random_params(_init, jax.random.key(0), 0)
    assert isinstance(p["dense"]["kernel"], np.ndarray)        # drawn on the host
    np.testing.assert_array_equal(p["norm"]["scale"], 1.0)
    np.testing.assert_array_equal(p["norm"]["bias"], 0.0)
    np.testing.assert_array_equal(p["dense"]["bias"], 0.0)
    assert abs(np.std(p["dense"]["kernel"]) * 16 - 1.0) < 0.05  # fan-in 256: std 1/16
    assert abs(np.std(p["embed"]["embedding"]) - 0.02) < 0.002  # embeddings: N(0, 0.02)
    assert p["half"]["kernel"].dtype == jnp.bfloat16             # the init's dtype is kept
    same, other = (random_params(_init, jax.random.key(0), s) for s in (0, 1))
    np.testing.assert_array_equal(same["dense"]["kernel"], p["dense"]["kernel"])
    assert not np.allclose(other["dense"]["kernel"], p["dense"]["kernel"])


def test_the_character_tokenizer_spells_words_out(tmp_path):
    from transformers import CLIPTokenizer
    write_char_tokenizer(tmp_path / "tok", max_length=12)
    tok = CLIPTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert tok.model_max_length == 12
    ids = tok("Ab c!")["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces == ["<|startoftext|>", "a", "b</w>", "c</w>", "!</w>", "<|endoftext|>"]
    assert tok.pad_token_id == tok.eos_token_id == 1 and ids[0] == 0
