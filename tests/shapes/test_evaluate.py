"""`jaxsteer.shapes.evaluate`: the coverage rule and the sample grid, on planted values. (`score`
on rendered images is tests/shapes/test_probe.py's.)"""

import numpy as np
from PIL import Image

from jaxsteer.shapes.captions import RANGES, TYPES
from jaxsteer.shapes.evaluate import _coverage, save_grid


def test_coverage_counts_bins_holding_a_quarter_of_a_uniform_share():
    lo, hi = RANGES["x"]
    centres = lo + (np.arange(10) + 0.5) * (hi - lo) / 10      # x: 10 bins over its range
    assert _coverage("x", np.repeat(centres, 4)) == 1.0
    assert _coverage("x", np.repeat(centres[:3], 4)) == 0.3
    # 1 of 41 samples in a bin is below a quarter of a uniform bin's 1/10: it does not count.
    assert _coverage("x", np.concatenate([np.repeat(centres[:1], 40), centres[1:2]])) == 0.1
    assert _coverage("type", np.array([0, 1] * 5, float)) == 2 / len(TYPES)
    assert _coverage("hue", np.array([])) is None


def test_save_grid_tiles_images_with_a_one_pixel_gap_four_times_enlarged(tmp_path):
    images = -np.ones((3, 2, 2, 3), np.float32)
    images[1] = 1.0
    save_grid(images, tmp_path / "g.png", cols=2)
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (2 * 3 * 4, 2 * 3 * 4, 3)            # 2 rows, 2 cols of (2 + 1) px
    assert grid[0, 0].tolist() == [0, 0, 0]                    # image 0 is black
    assert grid[0, 3 * 4].tolist() == [255, 255, 255]          # image 1, top-left, is white
    assert grid[2 * 4, 3 * 4].tolist() == [0, 0, 0]            # the gap under image 1
