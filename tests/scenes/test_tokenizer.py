"""Every grammar word is one CLIP token, and the host-side ids equal CLIPTokenizer's."""

import numpy as np
from transformers import CLIPTokenizer

from jaxsteer.scenes.prompts import sample_captions
from jaxsteer.scenes.tokenizer import MAX_LENGTH, token_ids, write_tokenizer


def test_ids_equal_clip_tokenizer(tmp_path):
    tok = CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path / "tok")))
    assert tok.model_max_length == MAX_LENGTH
    captions, _ = sample_captions(np.random.default_rng(0), 64, p_uncond=0.1)
    captions.append("this is a simple drawing of a large yellow striped triangle at the "
                    "bottom right on something and any dot")
    want = tok(captions, padding="max_length", max_length=MAX_LENGTH)["input_ids"]
    np.testing.assert_array_equal(token_ids(captions), np.asarray(want))
    assert len(tok(captions[-1])["input_ids"]) == len(captions[-1].split()) + 2 <= MAX_LENGTH
