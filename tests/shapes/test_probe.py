"""The probe reads the factors back from rendered images; `score` is a known-answer test."""

import numpy as np
import pytest

from jaxsteer.shapes.captions import HELDOUT_CAPTIONS, hue_distance
from jaxsteer.shapes.evaluate import score
from jaxsteer.shapes.probe import measure
from jaxsteer.shapes.render import sample_batch, to_uint8


@pytest.mark.parametrize("size,n", [(32, 400), (64, 200)])
def test_probe_recovers_factors(size, n):
    images, _, f = sample_batch(np.random.default_rng(size), n, size=size)
    m = measure(images)
    assert m["valid"].all()
    assert np.mean(m["type"] == f["type"]) >= 0.99
    assert np.abs(m["x"] - f["x"]).max() * size <= 1.0
    assert np.abs(m["y"] - f["y"]).max() * size <= 1.0
    assert np.abs(m["size"] - f["size"]).max() * size <= 0.5
    assert hue_distance(m["hue"], f["hue"]).max() <= 1.0


def test_probe_uint8_and_empty():
    images, _, _f = sample_batch(np.random.default_rng(3), 16)
    m8, mf = measure(to_uint8(images)), measure(images)
    np.testing.assert_allclose(m8["x"], mf["x"], atol=0.01)
    assert (m8["type"] == mf["type"]).all()
    empty = measure(-np.ones((2, 32, 32, 3), np.float32))
    assert not empty["valid"].any() and (empty["type"] == -1).all()


def test_score_on_ground_truth_renders():
    images, caps, _ = sample_batch(np.random.default_rng(4), 512)
    s = score(caps, images)
    assert s["fixed"] == 1.0 and s["valid"] == 1.0
    assert min(s["coverage"].values()) >= 0.8 and s["passed"]
    held, held_caps, _ = sample_batch(np.random.default_rng(5), 64, captions=HELDOUT_CAPTIONS)
    assert score(held_caps, held)["fixed"] == 1.0
    # Images that ignore their captions fail: shuffle the captions against the images.
    shuffled = list(np.random.default_rng(6).permutation(caps))
    assert score(shuffled, images)["fixed"] < 0.5


def test_probe_ignores_a_background_wash():
    images, _, f = sample_batch(np.random.default_rng(7), 200)
    rgb = (images + 1) / 2
    wash = np.random.default_rng(8).uniform(0.0, 0.3, (200, 1, 1, 1)).astype(np.float32)
    noisy = np.random.default_rng(9).normal(0, 0.02, rgb.shape).astype(np.float32)
    washed = np.clip(wash + (1 - wash) * rgb + noisy, 0, 1) * 2 - 1
    m = measure(washed)
    assert np.mean(m["type"] == f["type"]) >= 0.97
    assert np.abs(m["x"] - f["x"]).max() * 32 <= 1.0
    assert hue_distance(m["hue"], f["hue"]).max() <= 5.0
    np.testing.assert_allclose(m["background"], wash[:, 0, 0, 0], atol=0.03)


def test_probe_ignores_speckle():
    images, _, f = sample_batch(np.random.default_rng(10), 200)
    rng = np.random.default_rng(11)
    specks = rng.random(images.shape[:3]) < 0.03
    colours = rng.uniform(-1, -0.1, images.shape).astype(np.float32)  # like generated speckle
    noisy = np.where(specks[..., None], np.maximum(images, colours), images)
    m = measure(noisy)
    assert np.mean(m["type"] == f["type"]) >= 0.97
    assert np.median(np.abs(m["x"] - f["x"])) * 32 <= 0.5
    assert np.median(np.abs(m["size"] - f["size"])) * 32 <= 0.5
