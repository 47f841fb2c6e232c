"""`jaxsteer.models.tokens_t5`: T5 pieces grouped into words (punctuation apart), the Flux ids'
two rows, and the refusal of a too-long prompt; on the tiny pipeline's T5 tokenizer."""

import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.tiny_flux import write_t5_tokenizer
from jaxsteer.models.tokens_t5 import T5Tokenizer, t5_word_positions, tokenize_flux


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5")
    write_t5_tokenizer(folder, max_length=20)
    return folder


@pytest.fixture(scope="module")
def t5(folder):
    return T5Tokenizer(folder)


class StubCLIP:
    pad_token_id, eos_token_id = None, 49407

    def __call__(self, prompt, add_special_tokens, truncation, max_length):
        ids = [49406] + [100 + i for i, _ in enumerate(prompt.split())] + [49407]
        return {"input_ids": ids[:max_length] if truncation else ids}


def test_the_tokenizer_reads_its_folder(t5, folder):
    assert t5.model_max_length == 20 and t5.pad_id == 0
    assert t5("ab")[-1] == 1 and t5.piece(t5("ab")[0]) == "\u2581a"
    assert t5.special == {0, 1, 2}                              # <pad>, </s>, <unk>
    assert T5Tokenizer(folder, max_length=8).model_max_length == 8


def test_words_punctuation_and_special_pieces(t5):
    ids = t5("Big, RED dog!")
    words = t5_word_positions(t5, ids)
    assert [w for w, _ in words] == ["big", ",", "red", "dog", "!"]
    rows = dict(words)
    assert rows["big"] == (0, 1, 2) and rows[","] == (3,)      # ▁b i g , (no bos row)
    assert rows["red"] == (4, 5, 6) and rows["!"] == (10,)
    assert len(ids) == 12 and ids[-1] == 1                      # </s> is no word's row


def test_flux_ids_have_a_t5_row_and_a_clip_row_padded_to_one_width(t5):
    tokens = tokenize_flux(t5, StubCLIP(), "a dog", t5_len=10, clip_len=6)
    ids = tokens.ids_et
    assert ids.shape == (2, 10)
    n = len(t5("a dog"))
    assert ids[0, :n].tolist() == t5("a dog") and set(ids[0, n:].tolist()) == {0}
    assert ids[1].tolist() == [49406, 100, 101, 49407] + [49407] * 6  # eos pads without a pad
    assert tokens.rows("dog") == (1, 2, 3)                      # ▁a ▁d o g: no bos row
    # CLIP is cut to its window (only its pooled vector is used); T5 never is.
    long = tokenize_flux(t5, StubCLIP(), "a b c d e f g", t5_len=16, clip_len=4)
    assert long.ids_et[1, :4].tolist() == [49406, 100, 101, 102]
    with pytest.raises(UserError, match="7 T5 tokens long, more than the model's 5"):
        tokenize_flux(t5, StubCLIP(), "a b c d e f g", t5_len=6, clip_len=4)
    assert tokenize_flux(t5, StubCLIP(), "a b c d e f g", 8, 4).ids_et.shape == (2, 8)  # fits
    with pytest.raises(UserError, match="the prompt is empty"):
        tokenize_flux(t5, StubCLIP(), " ", t5_len=10, clip_len=4)
    assert tokenize_flux(t5, StubCLIP(), "", 10, 4, allow_empty=True).words == ()
