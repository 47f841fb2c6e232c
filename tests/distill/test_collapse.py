"""The collapse read-out on rendered images, whose factors are known (a known-answer test)."""

import numpy as np
import pytest

from jaxsteer.distill.collapse import choose, factor_spreads, spread_ratio
from jaxsteer.shapes.captions import RANGES
from jaxsteer.shapes.render import render, sample_factors


def drawn(prompt: str, n: int, squeeze: float, seed: int = 0):
    """Images of ``prompt`` whose free x and y are squeezed to ``squeeze`` of their spread."""
    _, f = sample_factors(np.random.default_rng(seed), n, (prompt,))
    for k in ("x", "y"):
        centre = np.mean(RANGES[k])
        f[k] = (centre + squeeze * (f[k] - centre)).astype(np.float32)
    return render(f), f


def test_spreads_are_the_free_factors_and_their_ratio_is_the_squeeze():
    full, f_full = drawn("a red circle", 256, 1.0)
    half, f_half = drawn("a red circle", 256, 0.5, seed=1)
    a, b = factor_spreads("a red circle", full), factor_spreads("a red circle", half)
    assert set(a["spread"]) == {"x", "y", "size"} and a["fidelity"] == b["fidelity"] == 1.0
    assert a["usable"] == 1.0
    assert a["spread"]["x"] == pytest.approx(np.std(f_full["x"]), rel=0.05)   # probe ~ truth
    # x and y halved, size the same: the geometric mean of (0.5, 0.5, ~1).
    assert spread_ratio([b], [a]) == pytest.approx(0.5 ** (2 / 3), rel=0.1)
    assert spread_ratio([a, b], [a, a]) == pytest.approx(0.5 ** (1 / 3), rel=0.1)
    assert spread_ratio([{"spread": {"type": 0.0}}], [{"spread": {"type": 1.0}}]) is None


def test_the_chosen_student_is_the_most_collapsed_faithful_one():
    s = {"a": {"spread_ratio": 0.3, "fidelity": 0.8}, "b": {"spread_ratio": 0.5, "fidelity": 0.95},
         "c": {"spread_ratio": 0.7, "fidelity": 0.99}}
    assert choose(s, ("a", "b", "c")) == "b"
    assert choose(s, ("a",)) == "a"                  # none faithful enough: the most faithful
    assert choose(s, ("a", "c"), fidelity=0.995) == "c"
