"""Caption lists of the scenes world: the training draw and the benchmark's prompt lists.

Training captions are drawn slot by slot (each slot omitted, free phrase or a value, with
fixed odds; held-out combinations redrawn), with factors that obey them, vectorised in numpy.

The benchmark's complexity prompts are taken per free-factor count in hash order from one
split, each given the filler that brings its word count to the next entry of `LENGTHS` (cycled
in the same order for every count): each count gets the same multiset of lengths, so length
and free count are uncorrelated by construction (Spearman 0, against -0.93 in the shapes
grammar). Free factors are either left out or named by their free phrase, as in training; the
split is by meaning (`captions.meaning`), so the tune and test lists share no spec.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.scenes.captions import (
    CATEGORICAL,
    CONTINUOUS,
    FACTORS,
    FILLERS,
    HELDOUT_COMBOS,
    LEVELS,
    PHRASES,
    SLOTS,
    SPLITS,
    VALUES,
    is_heldout,
    make_caption,
    spec,
    split_of_meaning,
    text_hash,
)
from jaxsteer.shapes.captions import POSITIONS

# Per slot: P(left out), P(free phrase); the rest is shared by the values. The type is never
# left out ("shape" is its free phrase); no filler half of the time.
P_OMIT = {"filler": 0.5, "size": 0.4, "colour": 0.25, "texture": 0.35, "type": 0.0,
          "position": 0.3, "background": 0.35, "dot": 0.4}
P_FREE = {"filler": 0.0, "size": 0.1, "colour": 0.1, "texture": 0.1, "type": 0.25,
          "position": 0.1, "background": 0.1, "dot": 0.1}
HELDOUT = {(c, t, k) for c, t, k in HELDOUT_COMBOS}   # (colour, texture, type) slot phrases
# Word counts (without bos / eos) of the complexity prompts, cycled in this order.
LENGTHS = (15, 16, 17)


def _slot_probs(slot: str) -> np.ndarray:
    """[1 + phrases] probabilities: index 0 = left out, then `PHRASES[slot]` in order."""
    n_values = len(PHRASES[slot]) - (slot != "filler")
    p_value = (1.0 - P_OMIT[slot] - P_FREE[slot]) / n_values
    free = [] if slot == "filler" else [P_FREE[slot]]
    return np.array([P_OMIT[slot], *[p_value] * n_values, *free])


def draw_slots(rng: np.random.Generator, n: int, p_uncond: float = 0.0) -> list[tuple]:
    """n training captions as slot tuples (None = left out); a share ``p_uncond`` are empty."""
    choice_sn = np.stack([rng.choice(len(PHRASES[s]) + 1, n, p=_slot_probs(s)) for s in SLOTS])
    out = []
    for j in range(n):
        slots = tuple(None if k == 0 else PHRASES[s][k - 1]
                      for s, k in zip(SLOTS, choice_sn[:, j]))
        while is_heldout(make_caption(slots)):   # ~1% of draws: redraw the texture
            k = rng.choice(len(PHRASES["texture"]) + 1, p=_slot_probs("texture"))
            slots = slots[:3] + (None if k == 0 else PHRASES["texture"][k - 1],) + slots[4:]
        out.append(slots)
    empty = rng.random(n) < p_uncond
    return [(None,) * len(SLOTS) if e else s for s, e in zip(out, empty)]


def draw_factors(rng: np.random.Generator, captions: list[str]) -> dict[str, np.ndarray]:
    """Factors that obey each caption: [n] arrays (categorical int32, continuous float32)."""
    specs = [spec(c) for c in captions]
    lo = np.array([[s.bands[f][0] for f in CONTINUOUS] for s in specs], np.float32)
    hi = np.array([[s.bands[f][1] for f in CONTINUOUS] for s in specs], np.float32)
    vals = lo + rng.random(lo.shape, dtype=np.float32) * (hi - lo)
    out = {f: vals[:, i] for i, f in enumerate(CONTINUOUS)}
    out["hue"] = np.mod(out["hue"], 360.0).astype(np.float32)
    for f in CATEGORICAL:
        fixed = np.array([-1 if s.levels[f] is None else s.levels[f] for s in specs])
        out[f] = np.where(fixed < 0, rng.integers(0, LEVELS[f], len(specs)),
                          fixed).astype(np.int32)
    return {f: out[f] for f in FACTORS}


def sample_captions(rng: np.random.Generator, n: int, p_uncond: float = 0.0
                    ) -> tuple[list[str], dict[str, np.ndarray]]:
    """(n training captions, their factors)."""
    captions = [make_caption(s) for s in draw_slots(rng, n, p_uncond)]
    return captions, draw_factors(rng, captions)


def _options(slot: str) -> tuple[tuple[str | None, int], ...]:
    """(phrase or None, factors it fixes) of every choice of a content slot."""
    fixes = {p: 0 for p in PHRASES[slot]}
    for p in VALUES[slot]:
        fixes[p] = len(POSITIONS[p]) if slot == "position" else 1
    omit = () if slot == "type" else ((None, 0),)
    return omit + tuple(fixes.items())


@functools.lru_cache(maxsize=2)
def content_groups(split: str) -> dict[int, tuple[tuple[str, str], ...]]:
    """Every filler-free caption of one split (none held out) as (caption, its `meaning`),
    grouped by free-factor count, each group in the caption's hash order. The split is the
    meaning's (`captions.split_of`), so all spellings of one spec are in one group of one
    split. Built from the slots' options, not by parsing 112640 captions."""
    if split not in SPLITS:
        raise UserError(f"unknown caption split {split!r}: use one of {', '.join(SPLITS)}")
    groups: dict[int, list[tuple[int, str, str]]] = {n: [] for n in range(len(FACTORS) + 1)}
    for combo in itertools.product(*(_options(s) for s in SLOTS[1:])):
        phrases = tuple(p for p, _ in combo)
        if phrases[1:4] in HELDOUT:
            continue
        c = make_caption((None, *phrases))   # canonical already: its content is itself
        m = make_caption((None, *(p if k or s == "type" else None
                                  for s, (p, k) in zip(SLOTS[1:], combo))))   # = meaning(c)
        if split_of_meaning(m) == split:
            groups[len(FACTORS) - sum(k for _, k in combo)].append((text_hash(c), c, m))
    return {n: tuple((c, m) for _, c, m in sorted(g)) for n, g in groups.items() if g}


def _filler_for(content: str, extra: int) -> str | None:
    """The filler adding ``extra`` words (chosen among equals by the content's hash), or "" for
    none, or None when no filler has that length."""
    if extra == 0:
        return ""
    fits = [f for f in FILLERS if len(f.split()) == extra]
    return fits[text_hash(content) % len(fits)] if fits else None


def complexity_prompts(split: str, per_count: int,
                       lengths: tuple[int, ...] = LENGTHS) -> dict[int, list[str]]:
    """``per_count`` captions of each free-factor count the split has (test: 0..8, tune: 0..7,
    `captions.split_of`); the j-th of every count has ``lengths[j % len(lengths)]`` words: the
    first unused content of the count in hash order (`content_groups`) that a filler brings to
    that length and whose meaning the count has not used yet (a used meaning only when no new
    one fits: the 8-free count has one meaning), with that filler (the one of that length,
    among several by the content's hash)."""
    out: dict[int, list[str]] = {}
    for n, group in content_groups(split).items():
        chosen, used, meanings = [], set(), set()
        for j in range(per_count):
            target = lengths[j % len(lengths)]
            pick = None
            for fresh_only in (True, False):
                for c, m in group:
                    if c in used or (fresh_only and m in meanings):
                        continue
                    filler = _filler_for(c, target - len(c.split()))
                    if filler is not None:
                        pick = (c, m, filler)
                        break
                if pick:
                    break
            if pick is None:
                raise UserError(f"split {split!r} has too few {n}-free captions of "
                                f"{target} words")
            c, m, filler = pick
            used.add(c)
            meanings.add(m)
            chosen.append(f"{filler} {c}".strip())
        out[n] = chosen
    return out


def token_length(caption: str) -> int:
    """Tokens of a caption with the scenes tokenizer (one per word, plus bos and eos)."""
    return len(caption.split()) + 2


__all__ = ["LENGTHS", "complexity_prompts", "content_groups", "draw_factors", "draw_slots",
           "sample_captions", "token_length"]
