"""Exported directions render in jaxsteer as they render in a diffusers pipeline (issue 21).

The fixture (tests/fixtures/interop/, made by scripts/interop_roundtrip.py where torch and
diffusers are installed): a tiny random SD pipeline built and saved by diffusers, directions
jaxsteer found on it and exported, and the image diffusers rendered from them through
``prompt_embeds=steer_prompt_embeds(...)`` with jaxsteer's starting noise as ``latents``
(4 DDIM steps, guidance 2, float32 on the CPU). Here jaxsteer renders the same direction,
strength and seed from the exported file; skipped while the fixture is absent.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(os.environ.get("JAXSTEER_INTEROP_FIXTURE",
                              Path(__file__).resolve().parent / "fixtures" / "interop"))
TOL = 1e-3   # max abs difference on [0, 1] pixels (scripts/interop_roundtrip.py's TOL)


def test_jaxsteer_renders_the_exported_direction_as_diffusers_did():
    if not (FIXTURE / "expected.json").exists():
        pytest.skip("no interop fixture: run scripts/interop_roundtrip.py where torch is")
    from jaxsteer.interop import read_exported, render_exported, steer_prompt_embeds
    from jaxsteer.models import load
    from jaxsteer.models.nn.convert import read_safetensors
    from jaxsteer.sample import encode_prompt
    from jaxsteer.sampling import SamplerConfig

    expected = json.loads((FIXTURE / "expected.json").read_text())
    ref = read_safetensors(FIXTURE / "expected.safetensors")
    tensors, meta = read_exported(FIXTURE / "directions_pca.safetensors")
    bundle = load(str(FIXTURE / "pipeline"), dtype="float32")
    sampler = SamplerConfig(steps=expected["steps"], scheduler=expected["scheduler"],
                            guidance=expected["guidance"])
    cond, _ = encode_prompt(bundle, meta["prompt"], False)
    np.testing.assert_allclose(np.asarray(cond.emb), ref["prompt_embeds"], atol=1e-5)
    steered = steer_prompt_embeds(np.asarray(cond.emb), tensors["directions"][[expected["index"]]],
                                  meta["token_rows"], [expected["alpha"]])
    np.testing.assert_allclose(steered, ref["steered_prompt_embeds"], atol=1e-4)
    image, x_t = render_exported(bundle, tensors, meta, expected["index"], expected["alpha"],
                                 expected["seed"], sampler)
    # the noise diffusers was handed (to float rounding: the CI runs unoptimised XLA)
    np.testing.assert_allclose(x_t, ref["x_t"], atol=1e-6)
    ours = (image + 1.0) / 2.0
    assert np.abs(ref["image"] - ref["unsteered"]).max() > 10 * TOL   # steering shows
    err = float(np.abs(ours - ref["image"]).max())
    print(f"max abs difference to diffusers' render: {err:.2e} (tolerance {TOL})")
    assert err <= TOL
