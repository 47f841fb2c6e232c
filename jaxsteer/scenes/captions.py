"""The caption grammar of the scenes world: slots, what each phrase fixes, and the split.

A caption is ``[filler] a [size] [colour] [texture] <type> [position] [background] [dot]``.
Every slot but the filler fixes a factor when it holds a value phrase ("small", "striped",
"on grey", ...), and leaves it free both when it is left out and when it holds the slot's
*free phrase* ("sized", "coloured", "painted", "shape", "in any place", "on something", "and
any dot"). Each free phrase has the token count of the slot's value phrases (the position's
has that of its three-word phrases), so a caption that names every slot is as long whatever
it fixes: the benchmark can hold prompt length fixed across free-factor counts, which the
shapes grammar cannot (there, every fixed factor costs words). Fillers ("a photo of", ...) add
length without content.

Factors (units shared with `render` and `probe`): the shapes world's ``type``, ``hue``, ``x``,
``y``, ``size`` (`jaxsteer.shapes.captions`), plus ``texture`` (0 solid, 1 striped),
``background`` (0 black, 1 grey, 2 white) and ``dot`` (0 absent, 1 a small achromatic dot in
the top right corner).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.shapes.captions import (
    COLOURS,
    CONTINUOUS,
    HUE_HALF_WIDTH,
    POSITIONS,
    RANGES,
    SIZES,
    TOLERANCE,
    TYPES,
)
from jaxsteer.shapes.captions import obeys as _obeys_continuous

FACTORS = ("type", "hue", "x", "y", "size", "texture", "background", "dot")
CATEGORICAL = ("type", "texture", "background", "dot")
TEXTURES = ("solid", "striped")
BACKGROUNDS = ("black", "grey", "white")
DOTS = ("absent", "present")
LEVELS = {"type": len(TYPES), "texture": len(TEXTURES), "background": len(BACKGROUNDS),
          "dot": len(DOTS)}

# Fillers of 2..6 words, so that a filler can bring captions of any content to one length.
FILLERS = ("here is", "a photo of", "a picture of", "an image of", "a drawing of",
           "a simple drawing of", "a clear photo of", "this is a picture of",
           "this is a simple drawing of")
SLOTS = ("filler", "size", "colour", "texture", "type", "position", "background", "dot")
FREE = {"size": "sized", "colour": "coloured", "texture": "painted", "type": "shape",
        "position": "in any place", "background": "on something", "dot": "and any dot"}
VALUES: dict[str, tuple[str, ...]] = {
    "size": tuple(SIZES), "colour": tuple(COLOURS), "texture": TEXTURES, "type": TYPES,
    "position": tuple(POSITIONS), "background": tuple(f"on {b}" for b in BACKGROUNDS),
    "dot": ("and no dot", "and a dot"),
}
# Every phrase a slot may hold (values first, in factor-level order, then the free phrase).
PHRASES: dict[str, tuple[str, ...]] = {
    "filler": FILLERS, **{s: (*VALUES[s], FREE[s]) for s in SLOTS[1:]}}

# Colour x texture x type combinations that never appear in a training caption.
HELDOUT_COMBOS = (
    ("red", "striped", "triangle"), ("green", "striped", "circle"), ("blue", "solid", "square"),
    ("yellow", "striped", "square"), ("cyan", "solid", "triangle"),
    ("magenta", "striped", "circle"),
)

Slots = tuple[str | None, ...]   # one phrase or None per entry of SLOTS


@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """What a caption fixes: ``levels`` maps each categorical factor to its level or None
    (free); ``bands`` each continuous factor to its interval (hue intervals may wrap)."""

    caption: str
    levels: dict[str, int | None]
    bands: dict[str, tuple[float, float]]

    @property
    def fixed(self) -> tuple[str, ...]:
        """Names of the fixed factors, in `FACTORS` order."""
        return tuple(f for f in FACTORS if (self.levels[f] is not None if f in CATEGORICAL
                                            else self.bands[f] != RANGES[f]))

    @property
    def type(self) -> int | None:   # the name `shapes.captions.CaptionSpec` uses
        return self.levels["type"]


def make_caption(slots: Slots) -> str:
    """Joins one phrase (or None) per slot into a caption (all None: the empty caption)."""
    if all(p is None for p in slots):
        return ""
    filler, *rest = slots
    parts = [filler, "a", *rest]
    return " ".join(p for p in parts if p)


def _take(words: list[str], i: int, phrases: tuple[str, ...]) -> tuple[str | None, int]:
    """The longest of ``phrases`` that starts at ``words[i]``, and the index after it."""
    for p in sorted(phrases, key=lambda p: -len(p.split())):
        n = len(p.split())
        if words[i:i + n] == p.split():
            return p, i + n
    return None, i


def parse(caption: str) -> Slots:
    """Splits a grammar caption into one phrase or None per slot; the inverse of make_caption."""
    words = caption.lower().split()
    if not words:
        return (None,) * len(SLOTS)
    filler, i = _take(words, 0, FILLERS)
    if i >= len(words) or words[i] != "a":
        raise UserError(f"scenes caption {caption!r} must start with 'a' (after a filler)")
    out, i = [filler], i + 1
    for slot in SLOTS[1:]:
        phrase, i = _take(words, i, PHRASES[slot])
        if slot == "type" and phrase is None:
            raise UserError(f"scenes caption {caption!r} needs one of {PHRASES['type']}")
        out.append(phrase)
    if i != len(words):
        raise UserError(f"scenes caption {caption!r}: cannot read {' '.join(words[i:])!r}; "
                        f"the order is {' '.join(SLOTS)}")
    return tuple(out)


def _level(slot: str, phrase: str | None) -> int | None:
    return VALUES[slot].index(phrase) if phrase in VALUES[slot] else None


def spec(caption: str) -> SceneSpec:
    """The fixed factors and sampling bands of a caption ("" is the unconditional caption)."""
    s = dict(zip(SLOTS, parse(caption)))
    bands = {f: RANGES[f] for f in CONTINUOUS}
    if s["size"] in SIZES:
        bands["size"] = SIZES[s["size"]]
    if s["colour"] in COLOURS:
        c = COLOURS[s["colour"]]
        bands["hue"] = (c - HUE_HALF_WIDTH, c + HUE_HALF_WIDTH)
    if s["position"] in POSITIONS:
        bands.update(POSITIONS[s["position"]])
    levels = {f: _level(f, s[f]) for f in CATEGORICAL}
    return SceneSpec(caption, levels, bands)


def free_count(caption: str) -> int:
    """How many of the eight factors the caption leaves free (0..8)."""
    return len(FACTORS) - len(spec(caption).fixed)


def content(caption: str) -> str:
    """The canonical caption without its filler (what the caption says about the image)."""
    return make_caption((None, *parse(caption)[1:]))


def meaning(caption: str) -> str:
    """The canonical spelling of what the caption fixes: no filler, and every free phrase left
    out, but the type slot's ("shape", its absent form). Two captions have one meaning exactly
    when they have one `spec`; "" reads as "a shape" (both leave everything free)."""
    out = [None if s != "type" and p == FREE[s] else p
           for s, p in zip(SLOTS[1:], parse(caption)[1:])]
    return make_caption((None, *out[:3], out[3] or FREE["type"], *out[4:]))


def is_heldout(caption: str) -> bool:
    s = dict(zip(SLOTS, parse(caption)))
    return (s["colour"], s["texture"], s["type"]) in HELDOUT_COMBOS


def obeys(caption_spec: SceneSpec, factor: str, value: np.ndarray) -> np.ndarray:
    """Whether measured values of ``factor`` lie in the caption's band (widened by the shapes
    world's TOLERANCE) or equal its level."""
    if factor in CATEGORICAL:
        return np.asarray(value) == caption_spec.levels[factor]
    return _obeys_continuous(caption_spec, factor, value)


WORDS: tuple[str, ...] = tuple(sorted({w for ps in PHRASES.values() for p in ps
                                       for w in p.split()} | {"a"}))


# The tuning / test split, fixed before any method choice is tuned: the SHA-256 of the
# caption's `meaning` (so all spellings of one spec, with any filler and with free factors left
# out or named by their free phrase, are on the same side), even first byte -> test, odd ->
# tune. The one meaning that frees all eight factors ("a shape") is test by rule, as in the
# shapes grammar, so that the reported correlation spans 0..8 free factors (tune: 0..7).
SPLITS = ("tune", "test")


def text_hash(text: str) -> int:
    """A stable 64-bit hash of a string (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def caption_hash(caption: str) -> int:
    """The hash of the caption's meaning: the one key of its split and its order."""
    return text_hash(meaning(caption))


def split_of_meaning(canonical: str) -> str:
    """The split of a `meaning` string (what `split_of` computes after canonicalising)."""
    if canonical == ALL_FREE:
        return "test"
    return "test" if (text_hash(canonical) >> 56) % 2 == 0 else "tune"


def split_of(caption: str) -> str:
    """"tune" or "test": which half of the caption space the caption belongs to."""
    return split_of_meaning(meaning(caption))


ALL_FREE = "a " + FREE["type"]   # the meaning of "" and of every caption that fixes nothing


__all__ = ["ALL_FREE", "BACKGROUNDS", "CATEGORICAL", "CONTINUOUS", "DOTS", "FACTORS", "FILLERS",
           "FREE", "HELDOUT_COMBOS", "PHRASES", "RANGES", "SLOTS", "TEXTURES", "TOLERANCE",
           "TYPES", "VALUES", "WORDS", "SceneSpec", "caption_hash", "content", "free_count",
           "is_heldout", "make_caption", "meaning", "obeys", "parse", "spec", "split_of",
           "split_of_meaning", "text_hash"]
