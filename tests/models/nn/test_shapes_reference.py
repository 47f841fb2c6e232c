"""The bundled shapes model gives the outputs it gave on diffusers' Flax classes.

``tests/fixtures/shapes_reference.safetensors`` holds, from the last release that ran on
diffusers 0.39 / transformers 4 (written once with ``python tests/models/nn/
test_shapes_reference.py --write`` before the switch): the text embedding of a prompt, the
UNet's prediction on fixed noise, the decoded image and the gradient of a fixed linear loss of
that prediction w.r.t. the embedding. float32; differences are summation-order noise.
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "shapes_reference.safetensors"
PROMPT = "a small red circle on the left"
ATOL = 1e-5


def _outputs() -> dict[str, np.ndarray]:
    from jaxsteer.models import load

    bundle = load("shapes")
    m, p = bundle.model, bundle.params
    ids = jnp.asarray(m.tokenize(PROMPT).ids_et)[None]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, *m.latent_shape)).astype(np.float32))
    t = jnp.asarray([900, 250], jnp.int32)
    w = jnp.asarray(rng.standard_normal(x.shape).astype(np.float32))

    @jax.jit
    def run(p, ids, x, t, w):
        cond = m.encode_text(p, ids)
        emb = jnp.broadcast_to(cond.emb, (2, *cond.emb.shape[1:]))

        def loss(emb):
            out = m.predict(p, x, t, type(cond)(emb=emb, extra=cond.extra))
            return jnp.sum(out * w), out

        (_, out), grad = jax.value_and_grad(loss, has_aux=True)(emb)
        return cond.emb, out, grad, m.decode(p, out)

    emb, out, grad, image = run(p, ids, x, t, w)
    return {"ids": np.asarray(ids), "emb": np.asarray(emb), "x": np.asarray(x),
            "out": np.asarray(out), "grad": np.asarray(grad), "image": np.asarray(image)}


def test_shapes_model_outputs_are_unchanged():
    if not REFERENCE.exists():
        pytest.skip("no stored shapes reference")
    from jaxsteer.models.nn.convert import read_safetensors

    ref, ours = read_safetensors(REFERENCE), _outputs()
    np.testing.assert_array_equal(ours["ids"], ref["ids"])
    for name in ("emb", "out", "grad", "image"):
        err = float(np.abs(ours[name] - ref[name]).max())
        print(f"shapes {name}: max abs error {err:.2e}")
        assert err <= ATOL * max(1.0, float(np.abs(ref[name]).max())), name


if __name__ == "__main__" and "--write" in sys.argv:
    import os

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from jaxsteer.models.nn.convert import write_safetensors

    write_safetensors(REFERENCE, _outputs())
    print("wrote", REFERENCE)
