"""What a synthetic world gives `jaxsteer distill-shapes`: its bundled teacher, the captions the
student trains on, and which world a teacher folder draws.

The DMD step sees only the teacher's definition (pixels for shapes, the VAE's latents for
scenes: `model.latent_shape` either way), so a world is just this: the caption draw of its own
trainer (`shapes.train.DataStream`; `scenes.prompts.sample_captions` through the scenes
grammar's token ids, as `scenes.train.data` draws them), without caption dropout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxsteer.errors import UserError
from jaxsteer.records import read_json
from jaxsteer.scenes import captions as scenes_captions
from jaxsteer.scenes import tokenizer as scenes_tokenizer
from jaxsteer.scenes.prompts import sample_captions
from jaxsteer.shapes import captions as shapes_captions
from jaxsteer.shapes.train import DataStream

WORLDS = ("shapes", "scenes")   # each also names the world's bundled teacher
AUTO = "auto"


def _knows_scenes(vocab: dict) -> bool:
    """Whether a tokenizer gives every scenes word the id `scenes.tokenizer.token_ids` uses
    (the stream below tokenizes without the teacher's tokenizer)."""
    mine = scenes_tokenizer.vocab()
    return all(vocab.get(w + "</w>", -1) == mine[w + "</w>"] for w in scenes_captions.WORDS)


def _knows_shapes(vocab: dict) -> bool:
    return all(w + "</w>" in vocab for w in shapes_captions.WORDS)


def teacher_world(teacher: Path) -> str:
    """The world a teacher pipeline folder draws, read off its tokenizer: scenes when it has the
    scenes grammar's vocabulary (a superset of the shapes words), else shapes when it knows
    every shapes word; neither is a UserError."""
    path = teacher / "tokenizer" / "vocab.json"
    vocab = read_json(path) if path.exists() else {}
    if _knows_scenes(vocab):
        return "scenes"
    if _knows_shapes(vocab):
        return "shapes"
    raise UserError(f"the teacher {teacher} is not a shapes or scenes model (its tokenizer "
                    "lacks the worlds' caption words): distil one made by `jaxsteer "
                    "train-shapes` or `jaxsteer train-scenes`")


def resolve(world: str, teacher: Path) -> str:
    """``world`` ("auto": the teacher's), checked against what the teacher draws."""
    drawn = teacher_world(teacher)
    if world not in (AUTO, drawn):
        raise UserError(f"--world {world}: the teacher {teacher} is a {drawn} model; pass "
                        f"--world {drawn} (or auto) or a {world} teacher")
    return drawn


def caption_stream(world: str, tokenizer_dir: Path, batch: int, seed: int
                   ) -> Callable[[int], np.ndarray]:
    """``step -> [batch, T]`` int32 token ids of the world's training captions, a pure function
    of (seed, step) so that a resumed run sees the same captions."""
    if world == "shapes":
        data = DataStream(tokenizer_dir, batch, 0.0, seed)
        return lambda step: data(step)["ids"]
    if world == "scenes":
        return functools.partial(_scenes_ids, batch, seed)
    raise UserError(f"unknown world {world!r}: use one of {', '.join(WORLDS)}")


def _scenes_ids(batch: int, seed: int, step: int) -> np.ndarray:
    captions, _ = sample_captions(np.random.default_rng([seed, step]), batch)
    return scenes_tokenizer.token_ids(captions)
