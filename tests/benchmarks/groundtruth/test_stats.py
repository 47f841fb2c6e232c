"""`groundtruth.stats`: rank correlation, factor changes and spreads, recovery scores, the
summary and the ranking, on planted data (rendered shapes or planted records; no model runs here).
"""

import numpy as np
import pytest
from scipy.stats import spearmanr

from jaxsteer.benchmarks.groundtruth import (
    best_over_directions,
    factor_change,
    recovery_scores,
    spearman,
    spread,
    stats,
)
from jaxsteer.shapes.probe import measure
from jaxsteer.shapes.render import render
from tests.benchmarks.groundtruth.helpers import FREE_ALL


def test_spearman_matches_scipy_and_is_none_when_undefined():
    x = np.arange(10.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -np.exp(x)) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 40), rng.standard_normal(40)  # ties in a
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(x, np.ones(10)) is None and spearman([1.0, 2.0], [3.0, 1.0]) is None


def test_hue_change_wraps_and_spread_is_circular():
    np.testing.assert_allclose(factor_change("hue", [10.0, 350.0, 180.0], [350.0, 10.0, 0.0]),
                               [20.0, -20.0, -180.0])
    np.testing.assert_allclose(factor_change("x", [0.3], [0.5]), [-0.2])
    assert spread("hue", [355.0, 5.0, 0.0]) < 6.0                 # around red, not 175 degrees
    assert spread("hue", np.arange(0.0, 360.0, 30.0)) > 100.0     # all around the wheel
    assert spread("type", [1, 1, 1, 1]) == 0.0
    assert spread("type", [0, 1, 2] * 5) == pytest.approx(1.0)
    assert spread("x", [0.4, 0.6]) == pytest.approx(0.1) and spread("x", [0.4]) is None


def _steered_grid(seeds: int, strengths: np.ndarray, moves: dict[str, float],
                  hue: tuple[float, float] = (0.0, 360.0)):
    """Rendered images of random shapes (one per seed) moved by ``strength * moves[factor]``:
    the references (strength 0) first, then every (seed, strength)."""
    rng = np.random.default_rng(1)
    base = {"type": rng.integers(0, 3, seeds), "hue": rng.uniform(*hue, seeds),
            "x": rng.uniform(0.4, 0.6, seeds), "y": rng.uniform(0.4, 0.6, seeds),
            "size": rng.uniform(0.12, 0.16, seeds)}
    seed_n = np.concatenate([np.arange(seeds), np.repeat(np.arange(seeds), len(strengths))])
    strength_n = np.concatenate([np.zeros(seeds), np.tile(strengths, seeds)])
    factors = {f: v[seed_n] + strength_n * moves.get(f, 0.0) for f, v in base.items()}
    factors["type"] = base["type"][seed_n]
    factors["hue"] = np.mod(factors["hue"], 360.0)
    images = render({f: np.asarray(v) for f, v in factors.items()}, size=32)
    return measure(images), strength_n, seed_n


def test_recovery_finds_the_factor_a_planted_direction_moves():
    strengths = np.array([-2.0, -1.0, 1.0, 2.0])
    moves_x, s_n, seed_n = _steered_grid(6, strengths, {"x": 0.03})
    moves_size, _, _ = _steered_grid(6, strengths, {"size": 0.015})
    usable = np.ones(len(s_n), bool)
    per_dir = [recovery_scores(m, usable, s_n, seed_n, FREE_ALL) for m in (moves_size, moves_x)]
    assert per_dir[1]["x"]["score"] >= 0.99 and per_dir[1]["x"]["rho"] > 0
    assert per_dir[0]["size"]["score"] >= 0.99
    assert per_dir[1]["type"]["score"] == 0.0                     # the shape kept its type
    best = best_over_directions(per_dir)
    assert best["x"]["direction"] == 1 and best["size"]["direction"] == 0
    # Unusable samples are left out, references included: a seed whose reference is unusable
    # contributes nothing.
    usable[0] = False
    scores = recovery_scores(moves_x, usable, s_n, seed_n, ("x",))
    assert scores["x"]["usable"] == pytest.approx(1 - (1 + len(strengths)) / len(s_n))
    # Hue through red: readings jump 359 -> 1, the wrapped change stays monotone, while the
    # plain difference would not.
    m, s_n, seed_n = _steered_grid(4, strengths, {"hue": 10.0}, hue=(345.0, 355.0))
    naive = [spearman(s_n[seed_n == i], m["hue"][seed_n == i]) for i in range(4)]
    assert max(naive) < 0.9                                        # every seed crosses 0
    ones = np.ones(len(s_n), bool)
    assert recovery_scores(m, ones, s_n, seed_n, ("hue",))["hue"]["score"] >= 0.99


def test_type_score_is_the_share_of_changed_types():
    m = {"type": np.array([0, 1, 0, 2, 2, 2])}
    s_n = np.array([0.0, 0.0, -1.0, 1.0, -1.0, 1.0])
    seed_n = np.array([0, 1, 0, 0, 1, 1])
    out = recovery_scores(m, np.ones(6, bool), s_n, seed_n, ("type",))
    assert out["type"]["score"] == pytest.approx(0.75)  # 3 of the 4 steered samples changed
    # No directions at all (an SAE that kept none): every free factor scores 0, not missing.
    assert best_over_directions([], ("x", "type")) == {
        f: {"score": 0.0, "usable": 0.0, "direction": None} for f in ("x", "type")}


def test_summary_on_a_planted_result():
    from jaxsteer.benchmarks.groundtruth.stats import format_tables
    from jaxsteer.benchmarks.groundtruth.stats import summary as _summary

    def entry(spread, fidelity, ratio=None):
        return {"spread": {"x": spread, "type": 0.0}, "fidelity": fidelity, "usable": 1.0,
                **({} if ratio is None else {"ratio_vs_turbo": ratio})}

    result = {
        "config": {"k": 2}, "recovery": {"a circle": {
            "free": ["hue", "x"], "pca": {"hue": {"score": 0.5, "usable": 1.0},
                                          "x": {"score": 1.0, "usable": 1.0}},
            "sae": {"hue": {"score": 0.0, "usable": 0.0}, "x": {"score": 0.2, "usable": 1.0}}}},
        "complexity": {"prompts": [{"prompt": "a shape", "n_free": 5,
                                    "estimates": {"mle": {"value": 3.0}}}],
                       "spearman": {"mle": 0.9}},
        "diversity": {p: {"free": ["type", "x"], "base": entry(0.1, 1.0, 4.0),
                          "turbo": entry(0.025, 0.9), "turbo+pca": entry(0.05, 0.8, 2.0)}
                      for p in ("a red circle", "a blue square")}}
    result["summary"] = s = _summary(result)
    assert s["recovery_pca"] == pytest.approx(0.75) and s["recovery_sae"] == pytest.approx(0.1)
    assert s["collapse_ratio"] == pytest.approx(4.0)                # base spread / turbo spread
    assert s["spread_ratio_pca"] == pytest.approx(2.0) and s["fidelity_pca"] == pytest.approx(0.8)
    assert s["spread_ratio_sae"] is None and s["complexity_spearman"] == {"mle": 0.9}
    assert s["diversity_variants"] == {"turbo+pca": {"spread_ratio": pytest.approx(2.0),
                                                     "fidelity": pytest.approx(0.8)}}
    assert "target >= 0.9" in format_tables(result)


def test_ranking_interval_and_monotone_means():
    records = [{"prompt": str(i), "n_free": c, "estimates": {"a": {"value": v}, "b": {"value": w}}}
               for i, (c, v, w) in enumerate([(0, 1, 5), (0, 2, 4), (1, 3, 3), (1, 4, 4),
                                              (2, 5, 1), (2, 6, 2)])]
    table = stats.ranking_table(records)
    assert table["a"]["spearman"] == pytest.approx(spearmanr([1, 2, 3, 4, 5, 6],
                                                             [0, 0, 1, 1, 2, 2]).statistic)
    assert table["a"]["monotone"] and not table["b"]["monotone"]
    assert table["a"]["means"] == {"0": 1.5, "1": 3.5, "2": 5.5}
    lo, hi = table["a"]["ci"]
    assert 0.5 < lo <= table["a"]["spearman"] <= hi <= 1.0
    assert table["b"]["ci"][1] < 0

