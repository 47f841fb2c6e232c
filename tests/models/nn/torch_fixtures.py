"""Shared reading and comparison of the PyTorch reference fixtures (SD and Flux networks)."""

import json
from pathlib import Path

import numpy as np
import pytest

from jaxsteer.models.nn.convert import read_safetensors

# float32 noise of a tiny random UNet gradient reached 1.6e-5 of its max (jit vs eager)
ATOL = 1e-4


def case(fixtures: Path, name: str, script: str):
    """(folder, manifest entry, io arrays) of one fixture case; skips while it is absent."""
    folder = fixtures / name
    if not (folder / "io.safetensors").exists() or not (fixtures / "manifest.json").exists():
        pytest.skip(f"no torch fixture {name}: run scripts/{script}")
    manifest = json.loads((fixtures / "manifest.json").read_text())["cases"][name]
    return folder, manifest, read_safetensors(folder / "io.safetensors")


def close(name: str, ours, ref, atol: float = ATOL) -> None:
    """Max abs error within ``atol`` times the reference's magnitude (at least 1)."""
    ours, ref = np.asarray(ours, np.float32), np.asarray(ref, np.float32)
    assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(ours - ref).max())
    print(f"{name}: max abs error {err:.2e} (reference max {scale:.2f})")
    assert err <= atol * scale, f"{name}: {err:.2e} > {atol * scale:.2e}"


def close_output_and_grad(name: str, apply, io: dict) -> None:
    """``apply(encoder_hidden_states) -> output`` against the fixture's output and the gradient
    of its linear loss ``sum(output * loss_weight)`` w.r.t. the text embedding."""
    import jax
    import jax.numpy as jnp

    def loss(emb):
        out = apply(emb)
        return jnp.sum(out * io["loss_weight"]), out

    (_, out), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        io["encoder_hidden_states"])
    close(f"{name} out", out, io["out"])
    close(f"{name} grad", grad, io["grad_encoder_hidden_states"])
