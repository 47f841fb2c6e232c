"""The renderer: numpy and jax.numpy agree, factors come out as drawn, shapes stay inside."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.shapes import captions as C
from jaxsteer.shapes.render import alpha_mask, render, sample_batch, to_uint8


def test_sample_batch_shapes_and_captions():
    images, caps, f = sample_batch(np.random.default_rng(0), 64)
    assert images.shape == (64, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert len(caps) == 64 and set(f) == set(C.FACTORS)
    for c, i in zip(caps, range(64)):
        s = C.spec(c)
        for name in s.fixed:
            assert C.obeys(s, name, f[name][i:i + 1]).all()
    assert to_uint8(images).dtype == np.uint8


def test_numpy_and_jax_renders_agree():
    _, _, f = sample_batch(np.random.default_rng(1), 32)
    ref = render(f, 32)
    got = render({k: jnp.asarray(v) for k, v in f.items()}, 32, jnp)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5)


@pytest.mark.parametrize("size", [32, 64])
def test_area_and_containment(size):
    rng = np.random.default_rng(2)
    _, f = None, sample_batch(rng, 600, size=size)[2]
    alpha = alpha_mask(f, size)
    r_px = f["size"] * size
    k = np.array([np.pi, 4.0, np.sqrt(3.0)])[f["type"]]
    np.testing.assert_allclose(alpha.sum((1, 2)), k * r_px ** 2, rtol=0.03)
    # The extreme corners of the training ranges keep every shape inside the image.
    corner = {"type": np.array([0, 1, 2] * 2), "hue": np.zeros(6, np.float32),
              "x": np.array([0.28] * 3 + [0.72] * 3, np.float32),
              "y": np.array([0.28] * 3 + [0.72] * 3, np.float32),
              "size": np.full(6, 0.22, np.float32)}
    a = alpha_mask(corner, size)
    border = np.concatenate([a[:, 0], a[:, -1], a[:, :, 0], a[:, :, -1]], axis=1)
    assert border.max() == 0.0


def test_colours():
    f = {"type": np.array([1, 1, 1]), "hue": np.array([0.0, 120.0, 240.0], np.float32),
         "x": np.full(3, 0.5, np.float32), "y": np.full(3, 0.5, np.float32),
         "size": np.full(3, 0.2, np.float32)}
    centre = (render(f, 32)[:, 16, 16] + 1) / 2
    np.testing.assert_allclose(centre, np.eye(3), atol=1e-6)
