"""Flux's networks reproduce PyTorch diffusers / transformers, without torch in CI.

The fixtures (tiny random FluxTransformer2DModel without and with guidance, T5EncoderModel and
the Flux AutoencoderKL saved with ``save_pretrained``, their inputs, outputs and the transformer's
text-embedding gradient) are written by ``scripts/make_flux_torch_fixtures.py`` on a machine with
torch; each case is skipped while its files are absent. Float32 on both sides; the tolerance is
that of the SD fixtures, scaled by the largest reference magnitude.
"""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn.convert import read_safetensors
from jaxsteer.models.nn.load_flux import load_flux_transformer, load_flux_vae, load_t5

FIXTURES = Path(os.environ.get("JAXSTEER_TORCH_FLUX_FIXTURES",
                               Path(__file__).resolve().parents[1] / "fixtures" / "torch_flux"))
CASES = ("flux_dev", "flux_schnell", "t5", "vae_flux")
ATOL = 1e-4


def _case(name):
    folder = FIXTURES / name
    if not (folder / "io.safetensors").exists() or not (FIXTURES / "manifest.json").exists():
        pytest.skip(f"no torch fixture {name}: run scripts/make_flux_torch_fixtures.py")
    manifest = json.loads((FIXTURES / "manifest.json").read_text())["cases"][name]
    return folder, manifest, read_safetensors(folder / "io.safetensors")


def _close(name, ours, ref):
    ours, ref = np.asarray(ours, np.float32), np.asarray(ref, np.float32)
    assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(ours - ref).max())
    print(f"{name}: max abs error {err:.2e} (reference max {scale:.2f})")
    assert err <= ATOL * scale, f"{name}: {err:.2e} > {ATOL * scale:.2e}"


@pytest.mark.parametrize("name", CASES)
def test_matches_pytorch(name):
    folder, manifest, io = _case(name)
    kind = manifest["kind"]
    if kind == "flux":
        module, params = load_flux_transformer(folder, attention="xla")
        guidance = io.get("guidance")

        def loss(emb):
            out = module.apply({"params": params}, io["hidden_states"], emb, io["pooled"],
                               io["sigma"], io["img_ids"], io["txt_ids"], guidance)
            return jnp.sum(out * io["loss_weight"]), out

        (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(
            io["encoder_hidden_states"])
        _close(f"{name} out", out, io["out"])
        _close(f"{name} grad", grad, io["grad_encoder_hidden_states"])
    elif kind == "t5":
        module, params = load_t5(folder)
        _close(f"{name} last", module.apply({"params": params}, io["input_ids"]),
               io["last_hidden_state"])
    else:
        module, params, shift = load_flux_vae(folder)
        assert shift == pytest.approx(0.1159)
        dist = module.apply({"params": params}, io["images"], method="encode")
        _close(f"{name} mean", dist.mean, io["mean"])
        _close(f"{name} logvar", dist.logvar, io["logvar"])
        _close(f"{name} decoded", module.apply({"params": params}, io["mean"], method="decode"),
               io["decoded"])
