"""Host-side tokenization for Flux: T5 (sentencepiece pieces) for the differentiated rows, CLIP
for the pooled vector, and which T5 rows belong to which word.

The T5 tokenizer is read from ``tokenizer_2/tokenizer.json`` with the `tokenizers` package (no
sentencepiece, no torch); a folder with only ``spiece.model`` falls back to transformers'
``T5TokenizerFast``, which converts it (that needs sentencepiece).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.models.base import Tokens

SPACE = "\u2581"  # sentencepiece's word-start marker


class T5Tokenizer:
    """``__call__(text) -> ids`` (with the final ``</s>``), ``piece(id)``, ``pad_id``."""

    def __init__(self, folder: str | Path, max_length: int | None = None):
        folder = Path(folder)
        cfg_path = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        if (folder / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._tok.no_truncation()
            self._tok.no_padding()
            self._encode = lambda s: self._tok.encode(s).ids
            self.piece = self._tok.id_to_token
            self.pad_id = self._tok.token_to_id(cfg.get("pad_token", "<pad>")) or 0
            self.special = {self._tok.token_to_id(t) for t in ("<pad>", "</s>", "<unk>")}
        else:
            from transformers import T5TokenizerFast

            self._tok = T5TokenizerFast.from_pretrained(str(folder))
            self._encode = lambda s: self._tok(s, add_special_tokens=True)["input_ids"]
            self.piece = self._tok.convert_ids_to_tokens
            self.pad_id = int(self._tok.pad_token_id)
            self.special = set(self._tok.all_special_ids)
        self.special.discard(None)
        self.model_max_length = int(max_length or min(cfg.get("model_max_length", 512), 512))

    def __call__(self, text: str) -> list[int]:
        return list(self._encode(text))


def _is_punct(text: str) -> bool:
    return bool(text) and not any(ch.isalnum() for ch in text)


def t5_word_positions(tok: T5Tokenizer, ids: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Groups T5 ids into words: a piece starting with ``▁`` starts a word; a punctuation piece
    is a word of its own (as CLIP's BPE splits it), so ``monster.`` gives ``monster`` and ``.``.
    Words are lowercased (Tokens.rows matches lowercased words)."""
    words: list[tuple[str, list[int]]] = []
    glued = False  # whether the next piece without ``▁`` may continue the last word
    for row, tid in enumerate(ids):
        if tid in tok.special:
            glued = False
            continue
        piece = tok.piece(tid) or ""
        text = piece.lstrip(SPACE)
        starts = piece.startswith(SPACE) or not glued or _is_punct(text)
        if starts:
            words.append((text, [row]))
        else:
            words[-1] = (words[-1][0] + text, words[-1][1] + [row])
        glued = not _is_punct(text)
    return tuple((w.lower(), tuple(r)) for w, r in words if w or r)


def tokenize_flux(t5: T5Tokenizer, clip: Any, prompt: str, t5_len: int, clip_len: int,
                  allow_empty: bool = False) -> Tokens:
    """ids_et [2, max(t5_len, clip_len)]: row 0 T5 ids padded to ``t5_len`` (the rows the method
    differentiates), row 1 CLIP ids padded to ``clip_len`` (only its pooled vector is used);
    both padded on to the common width, which each encoder cuts back.

    A prompt longer than T5's window is refused (as for CLIP models); CLIP is cut to its 77
    tokens as FluxPipeline cuts it, since only its pooled vector conditions the transformer.
    """
    if not isinstance(prompt, str) or (not prompt.strip() and not allow_empty):
        raise UserError("the prompt is empty: give a text prompt, e.g. --prompt 'a picture of a "
                        "monster'")
    ids = t5(prompt)
    if len(ids) > t5_len:
        raise UserError(f"the prompt is {len(ids) - 1} T5 tokens long, more than the model's "
                        f"{t5_len - 1}; shorten it (jaxsteer refuses rather than cutting it)")
    cids = clip(prompt, add_special_tokens=True, truncation=True,
                max_length=clip_len)["input_ids"]
    cpad = clip.pad_token_id if clip.pad_token_id is not None else clip.eos_token_id
    width = max(t5_len, clip_len)
    rows = [ids + [t5.pad_id] * (width - len(ids)), cids + [cpad] * (width - len(cids))]
    return Tokens(ids_et=np.asarray(rows, np.int32), words=t5_word_positions(t5, ids),
                  prompt=prompt)
