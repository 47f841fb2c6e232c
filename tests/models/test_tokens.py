"""`jaxsteer.models.tokens`: BPE pieces grouped into words, padding, and refusals, with a stub
tokenizer whose ids are known by construction."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.models.tokens import tokenize, word_positions


class StubBPE:
    """Splits words into 2-character pieces, the last marked ``</w>``; 0 bos, 1 eos, 2 pad."""

    all_special_ids = [0, 1, 2]

    def __init__(self, pad=2):
        self.pad_token_id, self.eos_token_id, self.vocab = pad, 1, {}

    def _id(self, piece):
        return self.vocab.setdefault(piece, 10 + len(self.vocab))

    def convert_ids_to_tokens(self, tid):
        return {v: k for k, v in self.vocab.items()}[tid]

    def __call__(self, prompt, add_special_tokens=True, truncation=False):
        assert add_special_tokens and not truncation            # tokenize never cuts
        ids = [0]
        for word in prompt.lower().split():
            parts = [word[i:i + 2] for i in range(0, len(word), 2)]
            parts[-1] += "</w>"
            ids += [self._id(p) for p in parts]
        return {"input_ids": ids + [1]}


def test_words_and_their_rows():
    tok = StubBPE()
    ids = tok("A tiny monster")["input_ids"]        # bos a</w> ti ny</w> mo ns te r</w> eos
    assert word_positions(tok, ids) == (("a", (1,)), ("tiny", (2, 3)),
                                        ("monster", (4, 5, 6, 7)))
    # A word cut off before its </w> (no end marker) still counts, with the rows it has.
    assert word_positions(tok, ids[:6]) == (("a", (1,)), ("tiny", (2, 3)), ("mons", (4, 5)))


def test_every_encoder_is_padded_to_max_tokens_and_words_come_from_the_first():
    first, second = StubBPE(pad=2), StubBPE(pad=None)       # no pad token: eos pads
    t = tokenize((first, second), "a tiny dog", 10)
    assert t.ids_et.shape == (2, 10) and t.ids_et.dtype == np.int32
    n = 2 + 1 + 2 + 2                                       # bos, a, ti ny, do g, eos
    assert t.ids_et[0, n:].tolist() == [2] * (10 - n) and t.ids_et[1, n:].tolist() == [1] * 3
    assert t.rows("tiny dog") == (2, 3, 4, 5) and t.prompt == "a tiny dog"


def test_refusals():
    tok = StubBPE()
    with pytest.raises(UserError, match="the prompt is empty"):
        tokenize((tok,), "  ", 10)
    with pytest.raises(UserError, match="the prompt is empty"):
        tokenize((tok,), None, 10)
    assert tokenize((tok,), "", 10, allow_empty=True).ids_et[0, :2].tolist() == [0, 1]
    # 8 ids = 6 tokens between bos and eos: one over a window of 7 ids (5 tokens).
    with pytest.raises(UserError, match="6 tokens long, more than the text encoder's 5"):
        tokenize((tok,), "abcdef ghijkl", 7)
    assert tokenize((tok,), "abcdef ghijkl", 8).ids_et.shape == (1, 8)  # exactly fits
