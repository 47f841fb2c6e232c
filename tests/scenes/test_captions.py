"""The scenes grammar: parse inverts make_caption, phrases fix what they say, the split rule."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.scenes.captions import (
    FACTORS,
    FILLERS,
    FREE,
    SLOTS,
    VALUES,
    caption_hash,
    content,
    free_count,
    make_caption,
    meaning,
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


def test_split_is_by_meaning_and_balanced():
    a, b = "a striped square on white", "a drawing of a striped square on white"
    assert content(b) == a and caption_hash(a) == caption_hash(b) and split_of(a) == split_of(b)
    # a free factor left out or named by its free phrase: one meaning, one split
    assert meaning("a sized red circle in any place") == meaning("here is a red circle")
    assert meaning("") == meaning("a coloured shape and any dot") == "a shape"
    assert split_of("") == split_of("a painted shape") == "test"   # all free: test by rule
    slots = draw_slots(np.random.default_rng(1), 2000)
    test_share = np.mean([split_of(make_caption(s)) == "test" for s in slots])
    assert 0.4 < test_share < 0.6


def _key(s) -> tuple:
    return tuple(sorted(s.levels.items())), tuple(sorted(s.bands.items()))


def test_every_caption_parses_back_and_one_spec_has_one_split():
    """Random specs, each spelt several ways (any filler; each free factor left out or named by
    its free phrase): parse gives back the slots that made each caption, and captions of equal
    `spec` (levels and bands) share a split, whatever the grammar's meaning key."""
    rng = np.random.default_rng(0)
    split_by_key: dict[tuple, set] = {_key(spec("")): {split_of("")}}
    for _ in range(1500):
        chosen = [rng.choice([None, *VALUES[s]]) for s in SLOTS[1:]]
        for _ in range(4):
            slots = (rng.choice([None, *FILLERS]), *(
                p if p is not None else ("shape" if s == "type" else rng.choice([None, FREE[s]]))
                for s, p in zip(SLOTS[1:], chosen)))
            c = make_caption(slots)
            assert parse(c) == slots, c
            split_by_key.setdefault(_key(spec(c)), set()).add(split_of(c))
    assert len(split_by_key) < 1500 * 4 / 2 and len(split_by_key) > 1000
    assert all(len(v) == 1 for v in split_by_key.values())
    assert {s for v in split_by_key.values() for s in v} == {"tune", "test"}
    assert split_by_key[_key(spec(""))] == {"test"}
