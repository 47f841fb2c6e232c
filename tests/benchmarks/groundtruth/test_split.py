"""`groundtruth.split`: the prompt lists of each split (no model runs here)."""

import pytest

from jaxsteer.benchmarks.groundtruth import SCALES, complexity_prompts, section_prompts
from jaxsteer.shapes.captions import HELDOUT_CAPTIONS, free_count, split_of


@pytest.mark.parametrize("split", ["tune", "test"])
def test_prompt_lists_per_split(split):
    prompts = complexity_prompts(split, SCALES["gpu"]["per_count"])
    counts = [free_count(p) for p in prompts]
    assert len(prompts) >= 24 and len(set(prompts)) == len(prompts)
    for n in range(5):
        assert counts.count(n) >= 3, n
    assert counts.count(5) == (1 if split == "test" else 0)   # "a shape" is a test caption
    assert all(split_of(p) == split for p in prompts)
    assert not set(prompts) & set(HELDOUT_CAPTIONS)
    rec, div = section_prompts(split, SCALES["gpu"]["per_count"], SCALES["gpu"]["section_prompts"])
    assert len(rec) >= 6 and len(div) >= 6 and set(rec).isdisjoint(div)
    assert set(rec) | set(div) <= set(prompts)       # they reuse the complexity gradients
    assert {free_count(p) for p in rec} == {free_count(p) for p in div} == {2, 3, 4}


def test_splits_share_no_prompt():
    lists = {s: set(complexity_prompts(s, 10)) for s in ("tune", "test")}
    assert lists["tune"].isdisjoint(lists["test"])

