"""Flux's networks reproduce PyTorch diffusers / transformers, without torch in CI.

The fixtures (tiny random FluxTransformer2DModel without and with guidance, T5EncoderModel and
the Flux AutoencoderKL saved with ``save_pretrained``, their inputs, outputs and the transformer's
text-embedding gradient) are written by ``scripts/make_flux_torch_fixtures.py`` on a machine with
torch; each case is skipped while its files are absent. Float32 on both sides; the tolerance is
that of the SD fixtures, scaled by the largest reference magnitude.
"""

import os
from pathlib import Path

import pytest

from jaxsteer.models.nn.load_flux import load_flux_transformer, load_flux_vae, load_t5
from tests.models.nn.torch_fixtures import case, close, close_output_and_grad

FIXTURES = Path(os.environ.get("JAXSTEER_TORCH_FLUX_FIXTURES",
                               Path(__file__).resolve().parents[2] / "fixtures" / "torch_flux"))
CASES = ("flux_dev", "flux_schnell", "t5", "vae_flux")



def _case(name):
    return case(FIXTURES, name, "make_flux_torch_fixtures.py")


@pytest.mark.parametrize("name", CASES)
def test_matches_pytorch(name):
    folder, manifest, io = _case(name)
    kind = manifest["kind"]
    if kind == "flux":
        module, params = load_flux_transformer(folder, attention="xla")
        guidance = io.get("guidance")

        close_output_and_grad(name, lambda emb: module.apply(
            {"params": params}, io["hidden_states"], emb, io["pooled"], io["sigma"],
            io["img_ids"], io["txt_ids"], guidance), io)
    elif kind == "t5":
        module, params = load_t5(folder)
        close(f"{name} last", module.apply({"params": params}, io["input_ids"]),
               io["last_hidden_state"])
    else:
        module, params, shift = load_flux_vae(folder)
        assert shift == pytest.approx(0.1159)
        dist = module.apply({"params": params}, io["images"], method="encode")
        close(f"{name} mean", dist.mean, io["mean"])
        close(f"{name} logvar", dist.logvar, io["logvar"])
        close(f"{name} decoded", module.apply({"params": params}, io["mean"], method="decode"),
               io["decoded"])
