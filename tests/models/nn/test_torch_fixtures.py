"""jaxsteer's networks reproduce PyTorch diffusers / transformers, without torch in CI.

The fixtures (tiny random models saved with ``save_pretrained``, their inputs, outputs and
text-embedding gradients) are written by ``scripts/make_torch_fixtures.py`` on a machine with
torch; each case is skipped while its files are absent. Weights go through the torch-free
loader (fp16 variant, bf16 shards with an index, fp32). Float32 on both sides; tolerance
``ATOL`` scaled by the largest reference magnitude (PyTorch CPU and XLA CPU sum in different
orders).
"""

import os
from pathlib import Path

import pytest

from jaxsteer.models.nn.load import load_clip, load_unet, load_vae
from tests.models.nn.torch_fixtures import case, close, close_output_and_grad

# JAXSTEER_TORCH_FIXTURES points the test at a freshly made folder before it is committed.
FIXTURES = Path(os.environ.get("JAXSTEER_TORCH_FIXTURES",
                               Path(__file__).resolve().parents[2] / "fixtures" / "torch"))
CASES = ("clip_bigg", "clip_l", "unet_sd", "unet_sdxl", "vae")



def _case(name):
    return case(FIXTURES, name, "make_torch_fixtures.py")


@pytest.mark.parametrize("name", CASES)
def test_matches_pytorch(name):
    folder, manifest, io = _case(name)
    kind, variant = manifest["kind"], manifest.get("variant")
    if kind == "unet":
        module, params = load_unet(folder, variant=variant)
        added = None
        if "time_ids" in io:
            added = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}

        close_output_and_grad(name, lambda emb: module.apply(
            {"params": params}, io["sample"], io["timesteps"], emb, added), io)
    elif kind == "vae":
        module, params = load_vae(folder, variant=variant)
        dist = module.apply({"params": params}, io["images"], method="encode")
        close(f"{name} mean", dist.mean, io["mean"])
        close(f"{name} logvar", dist.logvar, io["logvar"])
        close(f"{name} decoded", module.apply({"params": params}, io["mean"], method="decode"),
               io["decoded"])
    else:
        module, params = load_clip(folder, with_projection=kind == "clip_projection",
                                   variant=variant)
        out = module.apply({"params": params}, io["input_ids"])
        close(f"{name} last", out.last_hidden_state, io["last_hidden_state"])
        close(f"{name} penultimate", out.penultimate, io["penultimate"])
        close(f"{name} pooled", out.pooled, io["pooled"])
        if "text_embeds" in io:
            close(f"{name} text_embeds", out.text_embeds, io["text_embeds"])
