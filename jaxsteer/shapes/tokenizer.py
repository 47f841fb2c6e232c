"""A CLIP BPE vocabulary for the shapes grammar, in which every grammar word is ONE token.

The files are the ones `transformers.CLIPTokenizer` reads (``vocab.json``, ``merges.txt``,
``tokenizer_config.json``), so the shapes model goes through exactly the tokenization path of
the real SD models. One token per word makes "the token of a word" unambiguous for the method.

The base vocabulary is CLIP's: the 256 byte symbols and their end-of-word forms, so any text
still tokenizes (unknown words fall apart into pieces). The merges are found by simulating
CLIP's BPE: while a grammar word still splits into several pieces, the merge of its first two
pieces is appended (lowest priority). Appending never changes a word that is already one token
(it has no pairs left), and each append shortens the word being built, so this ends.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from jaxsteer.records import atomic_write_text
from jaxsteer.shapes.captions import WORDS

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 16  # "a small magenta triangle at the bottom right" is 8 words + bos + eos


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible map from bytes to printable unicode symbols (GPT-2's table)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's BPE of one word: repeatedly merge the adjacent pair of lowest rank."""
    pieces = list(word[:-1]) + [word[-1] + "</w>"]
    while len(pieces) > 1:
        pairs = [(ranks.get(p, 1 << 30), i) for i, p in enumerate(itertools.pairwise(pieces))]
        rank, _ = min(pairs)
        if rank == 1 << 30:
            break
        first, second = next(p for p, r in ranks.items() if r == rank)
        out, i = [], 0
        while i < len(pieces):  # merge every occurrence, left to right, as CLIP does
            if i < len(pieces) - 1 and pieces[i] == first and pieces[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(pieces[i])
                i += 1
        pieces = out
    return pieces


def build_vocab(words: tuple[str, ...] = WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab token -> id, merges in priority order) in which each of ``words`` is one token."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(pieces := _bpe(word, ranks)) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            tokens.append(pair[0] + pair[1])
    tokens = list(dict.fromkeys(tokens)) + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_tokenizer(folder: str | Path, words: tuple[str, ...] = WORDS,
                    max_length: int = MAX_LENGTH) -> Path:
    """Writes a CLIPTokenizer folder (vocab.json, merges.txt, tokenizer_config.json, special map).

    Args:
      folder: created if missing.
      words: lower-case ASCII words that must each be one token.
      max_length: ``model_max_length`` (the text encoder's position count).
    """
    folder = Path(folder)
    vocab, merges = build_vocab(words)
    atomic_write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    # CLIPTokenizer skips the first line of merges.txt (a version header).
    atomic_write_text(folder / "merges.txt",
                      "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length,
         "do_lower_case": True, "clean_up_tokenization_spaces": False, **special}, indent=2))
    atomic_write_text(folder / "special_tokens_map.json", json.dumps(special, indent=2))
    return folder
