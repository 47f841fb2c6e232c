"""`jaxsteer.pages.svg`: bar heights, colours and the threshold line; histogram counts."""

import re

import numpy as np

from jaxsteer.pages.svg import bars, histogram

BLUE, GREY = "#3b78c2", "#aaa"


def _rects(svg):
    return [(float(h), c) for h, c in re.findall(r'<rect [^>]*height="([\d.]+)" fill="([^"]+)"',
                                                 svg)]


def test_bars_are_proportional_and_coloured_by_the_threshold():
    svg = bars([4.0, 2.0, 1.0, float("nan")], width=200, height=122, threshold=1.5, title="t<")
    rects = _rects(svg)
    h = 122 - 22 - 8                                           # plot height with axes
    assert [r[0] for r in rects] == [h, h / 2, h / 4, 0.0]     # NaN drawn as 0
    assert [r[1] for r in rects] == [BLUE, BLUE, GREY, GREY]
    y = 8 + h - h * 1.5 / 4
    assert f'y1="{y:.1f}" y2="{y:.1f}" stroke="#d33"' in svg
    assert "<title>t&lt;</title>" in svg and svg.endswith("</svg>")


def test_highlight_and_labels_and_a_threshold_above_every_bar():
    svg = bars([1.0, 1.0], highlight=[False, True], labels=["a&", "b"], axes=False)
    assert [c for _, c in _rects(svg)] == [GREY, BLUE]
    assert "<title>a&amp;: 1</title>" in svg and "<text" not in svg    # no axes
    tall = _rects(bars([1.0, 2.0], threshold=4.0, height=130, axes=True))
    assert tall[1][0] == (130 - 30) / 2                       # scaled to the threshold
    assert _rects(bars([], threshold=None)) == []


def test_histogram_counts_every_finite_value_once():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.standard_normal(60), [np.nan, np.inf]])
    svg = histogram(v, bins=6, height=120)
    heights = np.array([h for h, _ in _rects(svg)])
    counts, _ = np.histogram(v[np.isfinite(v)], bins=6)
    np.testing.assert_allclose(heights / heights.max(), counts / counts.max(), atol=2e-3)
    assert len(heights) == 6
    assert len(_rects(histogram([2.0, 2.0, 2.0]))) == 1         # one value: one bin
    assert "no values" in histogram([np.nan])
