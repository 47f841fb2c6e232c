"""jaxsteer's networks reproduce PyTorch diffusers / transformers, without torch in CI.

The fixtures (tiny random models saved with ``save_pretrained``, their inputs, outputs and
text-embedding gradients) are written by ``scripts/make_torch_fixtures.py`` on a machine with
torch; each case is skipped while its files are absent. Weights go through the torch-free
loader (fp16 variant, bf16 shards with an index, fp32). Float32 on both sides; tolerance
``ATOL`` scaled by the largest reference magnitude (PyTorch CPU and XLA CPU sum in different
orders).
"""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsteer.models.nn.convert import read_safetensors
from jaxsteer.models.nn.load import load_clip, load_unet, load_vae

# JAXSTEER_TORCH_FIXTURES points the test at a freshly made folder before it is committed.
FIXTURES = Path(os.environ.get("JAXSTEER_TORCH_FIXTURES",
                               Path(__file__).resolve().parents[1] / "fixtures" / "torch"))
CASES = ("clip_bigg", "clip_l", "unet_sd", "unet_sdxl", "vae")
ATOL = 1e-4  # float32 noise of a tiny random UNet gradient reached 1.6e-5 of its max (jit vs eager)


def _case(name):
    folder = FIXTURES / name
    if not (folder / "io.safetensors").exists() or not (FIXTURES / "manifest.json").exists():
        pytest.skip(f"no torch fixture {name}: run scripts/make_torch_fixtures.py")
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
    kind, variant = manifest["kind"], manifest.get("variant")
    if kind == "unet":
        module, params = load_unet(folder, variant=variant)
        added = None
        if "time_ids" in io:
            added = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}

        def loss(emb):
            out = module.apply({"params": params}, io["sample"], io["timesteps"], emb, added)
            return jnp.sum(out * io["loss_weight"]), out

        (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(
            io["encoder_hidden_states"])
        _close(f"{name} out", out, io["out"])
        _close(f"{name} grad", grad, io["grad_encoder_hidden_states"])
    elif kind == "vae":
        module, params = load_vae(folder, variant=variant)
        dist = module.apply({"params": params}, io["images"], method="encode")
        _close(f"{name} mean", dist.mean, io["mean"])
        _close(f"{name} logvar", dist.logvar, io["logvar"])
        _close(f"{name} decoded", module.apply({"params": params}, io["mean"], method="decode"),
               io["decoded"])
    else:
        module, params = load_clip(folder, with_projection=kind == "clip_projection",
                                   variant=variant)
        out = module.apply({"params": params}, io["input_ids"])
        _close(f"{name} last", out.last_hidden_state, io["last_hidden_state"])
        _close(f"{name} penultimate", out.penultimate, io["penultimate"])
        _close(f"{name} pooled", out.pooled, io["pooled"])
        if "text_embeds" in io:
            _close(f"{name} text_embeds", out.text_embeds, io["text_embeds"])
