"""The worlds the ground-truth benchmark runs on (`--groundtruth.world`): what it takes from each.

A `World` is a frozen bundle of the world's functions: its factors and which are categorical,
what a caption fixes, the split's prompts per free-factor count, the probe, the fidelity score,
the word whose token rows are differentiated, how a prompt seeds its draws, and the default
model and sampler preset. The benchmark's code is the same for every world; only these differ.

- ``shapes`` (`jaxsteer.shapes`): five factors; the prompts per count are the split's first
  captions in hash order, so prompt length follows the free count (Spearman -0.93).
- ``scenes`` (`jaxsteer.scenes`): eight factors; the prompts per count are
  `scenes.prompts.complexity_prompts`, whose fillers hold the word count fixed across counts
  (Spearman 0). Its default model is the bundled ``scenes`` (`jaxsteer train-scenes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.scenes import captions as scenes_captions
from jaxsteer.shapes import captions as shapes_captions

# Levels of every categorical factor of either world (a name is the same factor in both): the
# normalised entropy of `stats.spread` and the "share changed" score of `stats.recovery_scores`.
LEVELS: dict[str, int] = {"type": len(shapes_captions.TYPES), **scenes_captions.LEVELS}


@dataclasses.dataclass(frozen=True)
class World:
    """What the benchmark needs from one world (module docstring)."""

    name: str
    factors: tuple[str, ...]
    spec: Callable[[str], Any]            # caption -> spec with ``.fixed`` (raises UserError)
    groups: Callable[[str, int], dict[int, list[str]]]   # (split, per_count) -> count: prompts
    section_counts: tuple[int, ...]       # free counts of the recovery and diversity prompts
    measure: Callable[[np.ndarray], dict[str, np.ndarray]]   # images [n, H, W, 3] -> readings
    fidelity: Callable[[str, np.ndarray], float | None]      # share obeying every fixed factor
    word: Callable[[str], str]            # the word whose rows are differentiated
    prompt_hash: Callable[[str], int]     # seeds a prompt's pool, pairs and noise
    wash: str                             # probe key: the background's brightest channel
    model: str                            # default --groundtruth.model (a bundled model)
    preset: str                           # default --groundtruth.preset

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f for f in self.factors if f in LEVELS)

    def free(self, prompt: str) -> tuple[str, ...]:
        """The factors ``prompt`` leaves free, in factor order."""
        fixed = self.spec(prompt).fixed
        return tuple(f for f in self.factors if f not in fixed)

    def free_count(self, prompt: str) -> int:
        return len(self.factors) - len(self.spec(prompt).fixed)


def _shapes_groups(split: str, per_count: int) -> dict[int, list[str]]:
    return {n: g[:per_count] for n, g in shapes_captions.split_captions(split).items()}


def _shapes_fidelity(prompt: str, images: np.ndarray) -> float | None:
    from jaxsteer.shapes.evaluate import score
    return score([prompt] * len(images), images)["fixed"]


def _shapes_word(prompt: str) -> str:
    s = shapes_captions.spec(prompt)
    return "shape" if s.type is None else shapes_captions.TYPES[s.type]


def _shapes_measure(images: np.ndarray) -> dict[str, np.ndarray]:
    from jaxsteer.shapes.probe import measure
    return measure(images)


def _scenes_groups(split: str, per_count: int) -> dict[int, list[str]]:
    from jaxsteer.scenes.prompts import complexity_prompts
    return complexity_prompts(split, per_count)


def _scenes_fidelity(prompt: str, images: np.ndarray) -> float | None:
    from jaxsteer.scenes.evaluate import score
    return score(prompt, images)["all_fixed"]


def _scenes_word(prompt: str) -> str:
    """The type slot's phrase: the type word, or "shape" when the type is free (one token)."""
    return scenes_captions.parse(prompt)[scenes_captions.SLOTS.index("type")]


def _scenes_measure(images: np.ndarray) -> dict[str, np.ndarray]:
    from jaxsteer.scenes.probe import measure
    return measure(images)


def _scenes_hash(prompt: str) -> int:
    """The whole caption's hash: filler variants of one content are different prompts (their
    split is shared, `captions.caption_hash`, but their tokens are not)."""
    return scenes_captions.text_hash(" ".join(prompt.lower().split()))


WORLDS: dict[str, World] = {
    "shapes": World("shapes", shapes_captions.FACTORS, shapes_captions.spec, _shapes_groups,
                    (2, 3, 4), _shapes_measure, _shapes_fidelity, _shapes_word,
                    shapes_captions.caption_hash, "background", "shapes", "shapes"),
    # Counts 3..5 of 0..8 (shapes: 2..4 of 0..5): enough free factors to move, enough fixed
    # ones to keep. The samplers are the shapes presets (DDIM settings, not weights): 20 steps,
    # not the scenes preset's 25, so that both worlds' results share one sampler.
    "scenes": World("scenes", scenes_captions.FACTORS, scenes_captions.spec, _scenes_groups,
                    (3, 4, 5), _scenes_measure, _scenes_fidelity, _scenes_word, _scenes_hash,
                    "wash", "scenes", "shapes"),
}


def get(name: str) -> World:
    if name not in WORLDS:
        raise UserError(f"unknown --groundtruth.world {name!r}: use one of {', '.join(WORLDS)}")
    return WORLDS[name]
