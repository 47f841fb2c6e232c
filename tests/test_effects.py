"""Known answers: a planted brightness ramp, a planted local change, circles that grow."""

import numpy as np

from jaxsteer.effects import describe, heat_map, image_stats, slope, summary
from jaxsteer.shapes.render import render

ALPHAS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def test_a_uniform_brightness_ramp_reads_as_brightness_per_unit():
    base = np.zeros((2, 8, 8, 3), np.float32) - 0.5                 # two seeds, grey
    # [s, a, h, w, c]: +0.1 in [-1, 1] units per unit alpha = +0.05 on the 0-1 scale
    images = base[:, None] + 0.1 * ALPHAS[None, :, None, None, None]
    eff = describe(images, base, ALPHAS)
    assert eff["per_unit"]["brightness"] == 0.05
    assert eff["per_unit"]["contrast"] == 0 and eff["per_unit"]["colourfulness"] == 0
    assert eff["probe"] is None
    assert "brightness +0.05" in summary(eff)


def test_the_heat_map_is_where_the_pixels_change():
    base = np.zeros((1, 8, 8, 3), np.float32)
    images = np.repeat(base[:, None], 5, axis=1)
    images[:, :, :2, -2:, :] += ALPHAS[None, :, None, None, None] * 0.2   # top right corner
    heat = heat_map(images, base)
    assert heat.shape == (8, 8)
    assert heat[:2, -2:].min() > 0 and heat[2:].max() == 0 and heat[:, :-2].max() == 0


def test_slope_is_pooled_over_seeds_and_ignores_missing_readings():
    values = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 11.0, np.nan, 13.0, 14.0]])
    assert slope(values, ALPHAS) == 1.0
    red = np.zeros((4, 4, 3), np.float32) - 1
    red[..., 0] = 1
    assert image_stats(red)["colourfulness"] > image_stats(np.zeros((4, 4, 3)))["colourfulness"]


def test_the_shapes_probe_reads_growing_circles_as_size_per_unit():
    sizes = 0.2 + 0.02 * ALPHAS                                     # +0.02 per unit
    f = {"type": np.zeros(5, int), "hue": 120 + 5 * ALPHAS, "x": np.full(5, 0.5),
         "y": np.full(5, 0.5), "size": sizes}
    images = render(f)[None]                                         # one seed
    base = render({k: v[2:3] for k, v in f.items()})
    probe = describe(images, base, ALPHAS, probe="shapes")["probe"]
    assert abs(probe["size"] - 0.02) < 0.003
    assert abs(probe["hue_deg"] - 5) < 1 and abs(probe["x"]) < 1e-3
    assert probe["type_changed"] == 0
    assert "hue +5 deg" in summary({"per_unit": {}, "probe": probe})


def test_the_scenes_probe_reads_the_shape_of_a_scene_like_the_shapes_probe():
    from jaxsteer.scenes.render import render as render_scene
    sizes = 0.2 + 0.02 * ALPHAS
    f = {"type": np.zeros(5, int), "hue": 120 + 5 * ALPHAS, "x": np.full(5, 0.5),
         "y": np.full(5, 0.5), "size": sizes, "texture": np.ones(5, int),
         "background": np.full(5, 1), "dot": np.ones(5, int)}
    images = render_scene(f)[None]
    base = render_scene({k: v[2:3] for k, v in f.items()})
    probe = describe(images, base, ALPHAS, probe="scenes")["probe"]
    assert abs(probe["size"] - 0.02) < 0.003
    assert abs(probe["hue_deg"] - 5) < 1 and abs(probe["x"]) < 1e-3
    assert probe["type_changed"] == 0
