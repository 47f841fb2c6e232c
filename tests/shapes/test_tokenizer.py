"""The shapes tokenizer: CLIPTokenizer files in which every grammar word is one token."""

import pytest
from transformers import CLIPTokenizer

from jaxsteer.shapes.captions import WORDS, all_captions
from jaxsteer.shapes.tokenizer import MAX_LENGTH, write_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path_factory.mktemp("tok"))))


def test_every_word_is_one_token(tok):
    ids = {}
    for w in WORDS:
        got = tok(w)["input_ids"]
        assert got[0] == tok.bos_token_id and got[-1] == tok.eos_token_id
        assert len(got) == 3, (w, tok.convert_ids_to_tokens(got))
        assert tok.convert_ids_to_tokens(got[1]) == w + "</w>"
        ids[w] = got[1]
    assert len(set(ids.values())) == len(WORDS)


def test_round_trip_and_length(tok):
    assert tok.model_max_length == MAX_LENGTH
    assert tok.pad_token_id == tok.eos_token_id
    assert tok.convert_ids_to_tokens(tok.bos_token_id) == "<|startoftext|>"
    for caption in all_captions():
        ids = tok(caption, padding="max_length", max_length=MAX_LENGTH)["input_ids"]
        assert len(ids) == MAX_LENGTH
        assert len(tok(caption)["input_ids"]) == len(caption.split()) + 2
        assert tok.decode(ids, skip_special_tokens=True) == caption
    assert tok("")["input_ids"] == [tok.bos_token_id, tok.eos_token_id]
    # Words outside the grammar still tokenize, into pieces.
    assert len(tok("zebra")["input_ids"]) > 3
