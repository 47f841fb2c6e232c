"""The scenes grammar: parse inverts make_caption, phrases fix what they say, the split rule."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.scenes.captions import (
    FACTORS,
    FREE,
    PHRASES,
    SLOTS,
    VALUES,
    caption_hash,
    content,
    free_count,
    make_caption,
    obeys,
    parse,
    spec,
    split_of,
)
from jaxsteer.scenes.prompts import draw_slots


def test_parse_inverts_make_caption():
    for slots in draw_slots(np.random.default_rng(0), 300):
        assert parse(make_caption(slots)) == slots
    assert parse("") == (None,) * len(SLOTS)
    for bad in ("the circle", "a small", "a circle on the moon", "a circle small"):
        with pytest.raises(UserError):
            parse(bad)


def test_free_phrases_have_the_length_of_values():
    for slot, free in FREE.items():
        lengths = {len(v.split()) for v in VALUES[slot]}
        assert len(free.split()) in lengths, slot


def test_what_a_caption_fixes():
    s = spec("a photo of a small red striped circle at the top left on grey and a dot")
    assert s.fixed == FACTORS and s.levels == {"type": 0, "texture": 1, "background": 1,
                                               "dot": 1}
    assert s.bands["size"] == (0.10, 0.13) and s.bands["x"] == s.bands["y"] == (0.28, 0.36)
    assert obeys(s, "hue", np.array([355.0, 30.0])).tolist() == [True, False]
    assert obeys(s, "texture", np.array([1, 0])).tolist() == [True, False]
    explicit = "a sized coloured painted shape in any place on something and any dot"
    assert free_count(explicit) == free_count("a shape") == free_count("") == 8
    assert len(explicit.split()) == len("a small red solid circle in the middle on black "
                                        "and no dot".split())
    assert free_count("a circle on the left") == 6    # type and x fixed, y free


def test_split_is_by_content_and_balanced():
    a, b = "a striped square on white", "a drawing of a striped square on white"
    assert content(b) == a and caption_hash(a) == caption_hash(b) and split_of(a) == split_of(b)
    slots = draw_slots(np.random.default_rng(1), 2000)
    test_share = np.mean([split_of(make_caption(s)) == "test" for s in slots])
    assert 0.4 < test_share < 0.6
    assert all(p == PHRASES[s][PHRASES[s].index(p)] for s in SLOTS for p in PHRASES[s])
