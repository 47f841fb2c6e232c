"""Host-side tokenization with CLIP tokenizers, and which token rows belong to which word."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.models.base import Tokens


def word_positions(tokenizer: Any, ids: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Groups token ids into words: CLIP's BPE marks the last piece of a word with ``</w>``."""
    special = set(tokenizer.all_special_ids)
    words: list[tuple[str, tuple[int, ...]]] = []
    pieces: list[str] = []
    rows: list[int] = []
    for row, tid in enumerate(ids):
        if tid in special:
            continue
        piece = tokenizer.convert_ids_to_tokens(tid)
        pieces.append(piece)
        rows.append(row)
        if piece.endswith("</w>"):
            words.append(("".join(pieces)[: -len("</w>")], tuple(rows)))
            pieces, rows = [], []
    if pieces:
        words.append(("".join(pieces), tuple(rows)))
    return tuple(words)


def tokenize(tokenizers: tuple[Any, ...], prompt: str, max_tokens: int,
             allow_empty: bool = False) -> Tokens:
    """Tokenizes ``prompt`` with each encoder's tokenizer, padded to ``max_tokens``.

    ``allow_empty`` is for the unconditional branch of classifier-free guidance.
    A prompt longer than the encoder's window is refused rather than silently cut: the method
    differentiates token rows, and a cut prompt would change which concept is measured.
    """
    if not isinstance(prompt, str) or (not prompt.strip() and not allow_empty):
        raise UserError("the prompt is empty: give a text prompt, e.g. "
                        "--prompt 'a picture of a monster'")
    all_ids = []
    for tok in tokenizers:
        ids = tok(prompt, add_special_tokens=True, truncation=False)["input_ids"]
        if len(ids) > max_tokens:
            raise UserError(
                f"the prompt is {len(ids) - 2} tokens long, more than the text encoder's "
                f"{max_tokens - 2}; shorten it (jaxsteer refuses rather than cutting it)")
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        all_ids.append(ids + [pad] * (max_tokens - len(ids)))
    words = word_positions(tokenizers[0], all_ids[0])
    return Tokens(ids_et=np.asarray(all_ids, np.int32), words=words, prompt=prompt)
