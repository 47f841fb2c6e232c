"""The scenes probe reads all eight factors back from renders, texture and background too."""

import numpy as np

from jaxsteer.scenes.probe import measure
from jaxsteer.scenes.render import render, sample_batch
from jaxsteer.shapes.captions import hue_distance
from jaxsteer.shapes.render import to_uint8


def test_probe_recovers_every_factor():
    images, _, f = sample_batch(np.random.default_rng(0), 240)
    m = measure(images)
    assert m["valid"].all()
    for k in ("texture", "background", "dot"):
        assert (m[k] == f[k]).all(), k
    # The dot in front hides a few pixels of a large shape in its corner (~1% of scenes).
    assert np.mean(m["type"] == f["type"]) >= 0.99
    for k in ("x", "y"):
        assert np.mean(np.abs(m[k] - f[k]) * 64 <= 1.0) >= 0.99
    assert np.mean(np.abs(m["size"] - f["size"]) * 64 <= 0.5) >= 0.99
    assert np.mean(hue_distance(m["hue"], f["hue"]) <= 1.0) >= 0.99
    m8 = measure(to_uint8(images))
    assert (m8["texture"] == f["texture"]).all() and (m8["background"] == f["background"]).all()


def test_each_factor_changes_only_its_reading():
    base = {"type": np.array([1]), "hue": np.array([200.0]), "x": np.array([0.5]),
            "y": np.array([0.5]), "size": np.array([0.15]), "texture": np.array([0]),
            "background": np.array([0]), "dot": np.array([0])}
    ref = measure(render(base))
    for k, v in (("texture", 1), ("background", 2), ("dot", 1), ("background", 1)):
        m = measure(render({**base, k: np.array([v])}))
        assert m[k][0] == v and m["type"][0] == ref["type"][0] == 1
        assert abs(m["x"][0] - ref["x"][0]) < 1e-3 and abs(m["size"][0] - ref["size"][0]) < 1e-3
    img = render({**base, "texture": np.array([1]), "background": np.array([2])})
    assert img.shape == (1, 64, 64, 3) and img.min() >= -1.0 and img.max() <= 1.0
    assert np.allclose(img[0, 2, 2], 1.0)   # a white background
