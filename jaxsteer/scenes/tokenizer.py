"""The scenes grammar's CLIP vocabulary (one token per word, `jaxsteer.shapes.tokenizer`), and
the token ids of captions computed on the host without the tokenizer (training draws thousands
of captions a second; the ids equal CLIPTokenizer's, which a test checks)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jaxsteer.scenes.captions import WORDS
from jaxsteer.shapes.tokenizer import BOS, EOS, build_vocab
from jaxsteer.shapes.tokenizer import write_tokenizer as _write_tokenizer

# The longest caption: a 6-word filler and a 14-word content, plus bos and eos.
MAX_LENGTH = 24


def write_tokenizer(folder: str | Path) -> Path:
    """Writes the CLIPTokenizer folder of the scenes grammar."""
    return _write_tokenizer(folder, WORDS, MAX_LENGTH)


@functools.lru_cache(maxsize=1)
def vocab() -> dict[str, int]:
    return build_vocab(WORDS)[0]


def token_ids(captions: list[str], max_length: int = MAX_LENGTH) -> np.ndarray:
    """[n, max_length] int32: bos, one id per word, eos, then eos padding (CLIP's layout)."""
    v = vocab()
    out = np.full((len(captions), max_length), v[EOS], np.int32)
    for i, c in enumerate(captions):
        ids = [v[BOS], *(v[w + "</w>"] for w in c.lower().split()), v[EOS]]
        out[i, :len(ids)] = ids[:max_length]
    return out


__all__ = ["MAX_LENGTH", "token_ids", "vocab", "write_tokenizer"]
