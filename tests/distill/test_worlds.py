"""`distill.worlds`: which world a teacher draws, and each world's caption stream."""

import shutil

import numpy as np
import pytest

from jaxsteer.distill import worlds
from jaxsteer.errors import UserError
from jaxsteer.scenes.captions import spec
from jaxsteer.scenes.tokenizer import vocab


def test_the_world_is_read_off_the_teachers_tokenizer(micro_shapes, micro_scenes, tmp_path):
    assert worlds.teacher_world(micro_shapes) == "shapes"
    assert worlds.teacher_world(micro_scenes) == "scenes"
    assert worlds.resolve("auto", micro_scenes) == worlds.resolve("scenes", micro_scenes)
    with pytest.raises(UserError, match="--world scenes: the teacher .* is a shapes model"):
        worlds.resolve("scenes", micro_shapes)
    other = tmp_path / "other"
    shutil.copytree(micro_shapes / "tokenizer", other / "tokenizer")
    (other / "tokenizer" / "vocab.json").write_text('{"a</w>": 0}')
    with pytest.raises(UserError, match="not a shapes or scenes model"):
        worlds.teacher_world(other)


def test_the_scenes_stream_draws_grammar_captions_as_a_function_of_seed_and_step(micro_scenes):
    draw = worlds.caption_stream("scenes", micro_scenes / "tokenizer", 6, seed=3)
    ids = draw(5)
    assert ids.shape == (6, 24) and ids.dtype == np.int32
    np.testing.assert_array_equal(ids, worlds.caption_stream("scenes", None, 6, 3)(5))
    assert not np.array_equal(ids, draw(6))
    words = {i: w[:-4] for w, i in vocab().items() if w.endswith("</w>")}
    for row in ids:   # bos, the caption's words, eos padding: every caption parses
        spec(" ".join(words[i] for i in row[1:] if i in words))
    with pytest.raises(UserError, match="unknown world"):
        worlds.caption_stream("cities", None, 6, 3)
