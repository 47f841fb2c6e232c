"""The caption grammar: which words fix which factors, and the train / held-out split."""

import numpy as np
import pytest

from jaxsteer.errors import UserError
from jaxsteer.shapes import captions as C


def test_grammar_size_and_split():
    every = C.all_captions()
    assert len(every) == len(set(every)) == 3 * 7 * 4 * 10
    assert set(C.TRAIN_CAPTIONS).isdisjoint(C.HELDOUT_CAPTIONS)
    assert set(C.TRAIN_CAPTIONS) | set(C.HELDOUT_CAPTIONS) == set(every)
    assert len(C.HELDOUT_CAPTIONS) == 3 * len(C.HELDOUT_COMBOS)
    assert "a small red triangle on the left" in C.HELDOUT_CAPTIONS
    assert "a red triangle" in C.TRAIN_CAPTIONS  # only the triple is held out


@pytest.mark.parametrize("caption,fixed", [
    ("", ()),
    ("a shape", ()),
    ("a circle", ("type",)),
    ("a red circle", ("type", "hue")),
    ("a small blue square on the left", ("type", "hue", "x", "size")),
    ("a large green triangle at the top", ("type", "hue", "y", "size")),
    ("a magenta shape in the middle", ("hue", "x", "y")),
    ("a small shape at the bottom right", ("x", "y", "size")),
])
def test_spec_fixes_the_mentioned_factors(caption, fixed):
    s = C.spec(caption)
    assert s.fixed == fixed
    for f in C.CONTINUOUS:
        lo, hi = s.bands[f]
        full_lo, full_hi = C.RANGES[f]
        if f in fixed:
            assert hi - lo <= 0.25 * (full_hi - full_lo) + 1e-6
        else:
            assert (lo, hi) == (full_lo, full_hi)


def test_parse_round_trip_and_errors():
    for caption in C.all_captions():
        assert C.make_caption(*C.parse(caption)) == caption
    assert C.parse("  A  Red   CIRCLE ") == (None, "red", "circle", None)
    for bad in ("red circle", "a red", "a circle on top", "a purple circle"):
        with pytest.raises(UserError):
            C.spec(bad)


def test_training_distribution():
    caps, w = C.training_distribution(0.1)
    assert np.isclose(w.sum(), 1.0) and np.all(w > 0)
    assert caps[-1] == "" and np.isclose(w[-1], 0.1)
    assert not set(caps) & set(C.HELDOUT_CAPTIONS)
    # "a shape" (nothing fixed) must be common enough to learn the marginal distribution.
    assert w[caps.index("a shape")] > 0.005


def test_band_table_draws_inside_bands():
    caps = ("a red circle", "a small shape on the left", "a shape", "a magenta triangle")
    table = C.BandTable.build(caps)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(caps), 2000)
    f = table.draw(rng, idx)
    for i, c in enumerate(caps):
        s, rows = C.spec(c), idx == i
        for name in s.fixed:
            assert C.obeys(s, name, f[name][rows]).all(), (c, name)
    assert set(np.unique(f["type"][idx == 2])) == {0, 1, 2}
    red = f["hue"][idx == 0]
    assert (red < 10).any() and (red > 350).any()  # the red band wraps around 0


def test_obeys_tolerance():
    s = C.spec("a red shape on the left")
    assert C.obeys(s, "hue", np.array([355.0, 18.0, 25.0])).tolist() == [True, True, False]
    assert C.obeys(s, "x", np.array([0.30, 0.39, 0.45])).tolist() == [True, True, False]


def test_tuning_and_test_splits_are_fixed_disjoint_and_cover_every_count():
    every = C.all_captions()
    splits = {c: C.split_of(c) for c in every}
    assert set(splits.values()) == set(C.SPLITS)
    # The rule reads the canonical caption: spelling and spacing do not move a caption.
    assert C.split_of("  A  Red   CIRCLE ") == splits["a red circle"]
    assert C.caption_hash("a red circle") == C.caption_hash("A red  circle")
    assert C.split_of("a shape") == "test"           # the one caption with 5 free factors
    tune, test = C.split_captions("tune"), C.split_captions("test")
    for n in range(5):
        assert len(tune[n]) >= 3 and len(test[n]) >= 3, n
    assert tune[5] == [] and test[5] == ["a shape"]
    for groups in (tune, test):
        for n, caps in groups.items():
            assert all(C.free_count(c) == n for c in caps)
            assert not set(caps) & set(C.HELDOUT_CAPTIONS)
            assert caps == sorted(caps, key=C.caption_hash)   # hash order: "first m" is a rule
    flat = lambda g: {c for caps in g.values() for c in caps}  # noqa: E731
    assert flat(tune).isdisjoint(flat(test))
    assert flat(tune) | flat(test) == set(C.TRAIN_CAPTIONS)
    # Roughly half each (a hash, not a hand-picked list).
    assert 0.4 < len(flat(tune)) / len(C.TRAIN_CAPTIONS) < 0.6
    with pytest.raises(UserError, match="split"):
        C.split_captions("validation")
