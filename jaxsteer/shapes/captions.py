"""The caption grammar of the shapes world: which words fix which factors, and to what band.

A caption is ``a [size] [colour] <type|shape> [position]``; every part in brackets is optional and
"shape" leaves the type free. Each word that is present fixes its factor(s) to a narrow band;
every factor no word mentions is drawn from its full training range. Factor units (shared with
`render` and `probe`):

- ``type``: 0 circle, 1 square, 2 triangle (upright, equilateral).
- ``hue``: degrees in [0, 360), fully saturated and bright colour.
- ``x``, ``y``: the shape's area centroid as a fraction of the image width / height (y down).
- ``size``: half the shape's bounding-box width as a fraction of the image width (the circle's
  radius, the square's half side, half the triangle's side).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import numpy as np

from jaxsteer.errors import UserError

TYPES = ("circle", "square", "triangle")
FACTORS = ("type", "hue", "x", "y", "size")
CONTINUOUS = ("hue", "x", "y", "size")

# Full training ranges. x, y and size are chosen so that every shape stays inside the image:
# the triangle reaches 1.155 * size above its centroid, 0.28 - 1.155 * 0.22 > 0.
RANGES: dict[str, tuple[float, float]] = {
    "hue": (0.0, 360.0), "x": (0.28, 0.72), "y": (0.28, 0.72), "size": (0.10, 0.22)}

# Fixed bands: hue bands are centred on the colour (red wraps around 0).
COLOURS: dict[str, float] = {
    "red": 0.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0, "blue": 240.0, "magenta": 300.0}
HUE_HALF_WIDTH = 10.0
SIZES: dict[str, tuple[float, float]] = {"small": (0.10, 0.13), "large": (0.19, 0.22)}
_LOW, _MID, _HIGH = (0.28, 0.36), (0.46, 0.54), (0.64, 0.72)
POSITIONS: dict[str, dict[str, tuple[float, float]]] = {
    "on the left": {"x": _LOW}, "on the right": {"x": _HIGH},
    "at the top": {"y": _LOW}, "at the bottom": {"y": _HIGH},
    "in the middle": {"x": _MID, "y": _MID},
    "at the top left": {"x": _LOW, "y": _LOW}, "at the top right": {"x": _HIGH, "y": _LOW},
    "at the bottom left": {"x": _LOW, "y": _HIGH}, "at the bottom right": {"x": _HIGH, "y": _HIGH},
}

# How far outside its band a measured factor may lie and still count as obeying the caption
# (same units as the factor): about 1.3 px of position and 0.6 px of size at 32 x 32.
TOLERANCE: dict[str, float] = {"hue": 10.0, "x": 0.04, "y": 0.04, "size": 0.02}

# Colour x type x position combinations that never appear as a training caption (any size).
HELDOUT_COMBOS = (
    ("red", "triangle", "on the left"), ("green", "circle", "on the right"),
    ("blue", "square", "at the top"), ("yellow", "circle", "at the bottom"),
    ("cyan", "triangle", "in the middle"), ("magenta", "square", "at the top left"),
)

# Training caption distribution: each slot is mentioned independently with these odds.
_P_SIZE, _P_COLOUR, _P_TYPE, _P_POSITION = 0.5, 0.7, 0.75, 0.6


@dataclasses.dataclass(frozen=True)
class CaptionSpec:
    """What a caption fixes. ``type`` is None when free; ``bands`` maps each continuous factor to
    its sampling interval (hue intervals may start below 0: they wrap)."""

    caption: str
    type: int | None
    bands: dict[str, tuple[float, float]]

    @property
    def fixed(self) -> tuple[str, ...]:
        """Names of the fixed factors, in `FACTORS` order."""
        return tuple(f for f in FACTORS
                     if (f == "type" and self.type is not None) or
                     (f != "type" and self.bands[f] != RANGES[f]))


def make_caption(size: str | None, colour: str | None, type_: str | None,
                 position: str | None) -> str:
    """Joins the slots into a caption; None leaves a slot out (type None -> "shape")."""
    words = ["a", size, colour, type_ or "shape", position]
    return " ".join(w for w in words if w)


def parse(caption: str) -> tuple[str | None, str | None, str | None, str | None]:
    """Splits a grammar caption into (size, colour, type, position); the inverse of make_caption."""
    text = " ".join(caption.lower().split())
    if text == "":
        return None, None, None, None
    words = text.split()
    if words[0] != "a":
        raise UserError(f"shapes caption {caption!r} must start with 'a'")
    i = 1
    size = words[i] if i < len(words) and words[i] in SIZES else None
    i += size is not None
    colour = words[i] if i < len(words) and words[i] in COLOURS else None
    i += colour is not None
    if i >= len(words) or words[i] not in TYPES + ("shape",):
        raise UserError(f"shapes caption {caption!r} needs one of {TYPES + ('shape',)} "
                        f"after its size and colour words")
    type_ = None if words[i] == "shape" else words[i]
    rest = " ".join(words[i + 1:]) or None
    if rest is not None and rest not in POSITIONS:
        raise UserError(f"unknown position {rest!r} in shapes caption; use one of "
                        f"{list(POSITIONS)}")
    return size, colour, type_, rest


def spec(caption: str) -> CaptionSpec:
    """The fixed factors and sampling bands of a caption ("" is the unconditional caption)."""
    size, colour, type_, position = parse(caption)
    bands = dict(RANGES)
    if size:
        bands["size"] = SIZES[size]
    if colour:
        c = COLOURS[colour]
        bands["hue"] = (c - HUE_HALF_WIDTH, c + HUE_HALF_WIDTH)
    if position:
        bands.update(POSITIONS[position])
    return CaptionSpec(caption, TYPES.index(type_) if type_ else None, bands)


def all_captions() -> list[str]:
    """Every caption of the grammar (840), in a fixed order."""
    return [make_caption(*c) for c in itertools.product(
        (None, *SIZES), (None, *COLOURS), (None, *TYPES), (None, *POSITIONS))]


def is_heldout(caption: str) -> bool:
    _, colour, type_, position = parse(caption)
    return (colour, type_, position) in HELDOUT_COMBOS


TRAIN_CAPTIONS: tuple[str, ...] = tuple(c for c in all_captions() if not is_heldout(c))
HELDOUT_CAPTIONS: tuple[str, ...] = tuple(c for c in all_captions() if is_heldout(c))
WORDS: tuple[str, ...] = tuple(sorted({w for c in all_captions() for w in c.split()}))


def caption_weights(captions: tuple[str, ...] = TRAIN_CAPTIONS) -> np.ndarray:
    """[n] probabilities of the training caption distribution restricted to ``captions``."""
    def p(slot, present, n_values):
        return present / n_values if slot else 1.0 - present
    w = []
    for c in captions:
        size, colour, type_, position = parse(c)
        w.append(p(size, _P_SIZE, len(SIZES)) * p(colour, _P_COLOUR, len(COLOURS)) *
                 p(type_, _P_TYPE, len(TYPES)) * p(position, _P_POSITION, len(POSITIONS)))
    w = np.asarray(w, np.float64)
    return w / w.sum()


@dataclasses.dataclass(frozen=True)
class BandTable:
    """Sampling bands of a list of captions as arrays, for vectorised factor draws.

    Attributes:
      captions: the n captions, index-aligned with the arrays.
      type_c: [n] int, the fixed type or -1 when free.
      lo_cf, hi_cf: [n, 4] band edges of the continuous factors in `CONTINUOUS` order.
    """

    captions: tuple[str, ...]
    type_c: np.ndarray
    lo_cf: np.ndarray
    hi_cf: np.ndarray

    @classmethod
    def build(cls, captions: tuple[str, ...]) -> BandTable:
        specs = [spec(c) for c in captions]
        return cls(tuple(captions),
                   np.array([-1 if s.type is None else s.type for s in specs], np.int32),
                   np.array([[s.bands[f][0] for f in CONTINUOUS] for s in specs], np.float32),
                   np.array([[s.bands[f][1] for f in CONTINUOUS] for s in specs], np.float32))

    def draw(self, rng: np.random.Generator, idx_b: np.ndarray) -> dict[str, np.ndarray]:
        """Factors for captions ``idx_b`` [b]: each a [b] array (type int32, the rest float32)."""
        u_bf = rng.random((len(idx_b), len(CONTINUOUS)), dtype=np.float32)
        vals_bf = self.lo_cf[idx_b] + u_bf * (self.hi_cf[idx_b] - self.lo_cf[idx_b])
        out = {f: vals_bf[:, i] for i, f in enumerate(CONTINUOUS)}
        out["hue"] = np.mod(out["hue"], 360.0).astype(np.float32)
        free = self.type_c[idx_b] < 0
        out["type"] = np.where(free, rng.integers(0, len(TYPES), len(idx_b)),
                               self.type_c[idx_b]).astype(np.int32)
        return out


def hue_distance(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """Circular distance between hues in degrees, in [0, 180]."""
    d = np.mod(np.asarray(a) - b, 360.0)
    return np.minimum(d, 360.0 - d)


def obeys(caption_spec: CaptionSpec, factor: str, value: np.ndarray) -> np.ndarray:
    """Whether measured values of ``factor`` lie in the caption's band, widened by TOLERANCE."""
    if factor == "type":
        return np.asarray(value) == caption_spec.type
    lo, hi = caption_spec.bands[factor]
    if factor == "hue":
        centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        return hue_distance(value, centre) <= half + TOLERANCE["hue"]
    tol = TOLERANCE[factor]
    return (np.asarray(value) >= lo - tol) & (np.asarray(value) <= hi + tol)



def free_count(caption: str) -> int:
    """How many of the five factors the caption leaves free (0..5; only "a shape" frees all)."""
    return len(FACTORS) - len(spec(caption).fixed)


# The tuning / test split of the caption space, fixed before any method choice was tuned. A
# caption's split is decided by the SHA-256 of its canonical form (`make_caption(*parse(c))`):
# even first byte -> test, odd -> tune. "a shape", the one caption that frees all five factors,
# is assigned to test by rule, so that the reported rank correlation spans 0..5 free factors
# (the tuning split then spans 0..4).
SPLITS = ("tune", "test")


def caption_hash(caption: str) -> int:
    """A stable 64-bit hash of the caption's canonical form (the same on every machine)."""
    canonical = make_caption(*parse(caption))
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


def split_of(caption: str) -> str:
    """"tune" or "test": which half of the caption space the caption belongs to."""
    if free_count(caption) == len(FACTORS):
        return "test"
    return "test" if (caption_hash(caption) >> 56) % 2 == 0 else "tune"


def split_captions(split: str, captions: tuple[str, ...] = TRAIN_CAPTIONS) -> dict[int, list[str]]:
    """The split's captions grouped by free-factor count, each group in hash order (a fixed
    pseudo-random order, so "the first m" of a group is a rule, not a choice)."""
    if split not in SPLITS:
        raise UserError(f"unknown caption split {split!r}: use one of {', '.join(SPLITS)}")
    groups: dict[int, list[str]] = {n: [] for n in range(len(FACTORS) + 1)}
    for c in sorted((c for c in captions if split_of(c) == split), key=caption_hash):
        groups[free_count(c)].append(c)
    return groups


def training_distribution(p_uncond: float = 0.1) -> tuple[tuple[str, ...], np.ndarray]:
    """(captions, [n] probabilities) of training captions; "" (unconditional) has ``p_uncond``.

    The empty caption leaves every factor free, so classifier-free guidance dropout and the
    unconditional distribution are the same thing here.
    """
    captions = TRAIN_CAPTIONS + ("",)
    w = np.concatenate([caption_weights(TRAIN_CAPTIONS) * (1.0 - p_uncond), [p_uncond]])
    return captions, w / w.sum()
