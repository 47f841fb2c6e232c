"""Backend-dependent defaults: bf16 + fused attention + matmul-saving remat on accelerators,
the float32 reference path on the CPU; explicit choices always win."""

import dataclasses

import jax
import pytest

from jaxsteer import models
from jaxsteer.errors import UserError


@dataclasses.dataclass
class FakeDevice:
    platform: str
    device_kind: str


def _on(monkeypatch, platform: str, kind: str):
    backend = "gpu" if platform == "gpu" else platform
    monkeypatch.setattr(jax, "default_backend", lambda: backend)
    monkeypatch.setattr(jax, "devices", lambda *a: [FakeDevice(platform, kind)])


def test_cpu_defaults_keep_the_reference_path():
    assert models.resolve_dtype("auto") == "float32"
    assert models.resolve_attention("auto", "float32") == "diffusers"
    assert models.resolve_remat_policy("auto") == "none"


def test_nvidia_gpu_defaults_are_the_fast_settings(monkeypatch):
    _on(monkeypatch, "gpu", "NVIDIA H100 80GB HBM3")
    assert models.resolve_dtype("auto") == "bfloat16"
    assert models.resolve_attention("auto", "bfloat16") == "auto"    # cuDNN where it applies
    assert models.resolve_attention("auto", "float32") == "xla"   # cuDNN flash needs 16 bits
    assert models.resolve_remat_policy("auto") == "matmuls"


def test_tpu_defaults(monkeypatch):
    _on(monkeypatch, "tpu", "TPU v5 lite")
    assert models.resolve_dtype("auto") == "bfloat16"
    assert models.resolve_attention("auto", "bfloat16") == "xla"
    assert models.resolve_remat_policy("auto") == "matmuls"


def test_explicit_choices_win(monkeypatch):
    _on(monkeypatch, "gpu", "NVIDIA H100 80GB HBM3")
    assert models.resolve_dtype("float32") == "float32"
    assert models.resolve_attention("diffusers", "bfloat16") == "diffusers"
    assert models.resolve_remat_policy("none") == "none"


def test_bad_choices_are_user_errors():
    with pytest.raises(UserError, match="--attention"):
        models.resolve_attention("flash", "bfloat16")
    with pytest.raises(UserError, match="--remat-policy"):
        models.resolve_remat_policy("some")


def test_load_records_the_resolved_settings(tiny_folder):
    bundle = models.load(str(tiny_folder), remat_policy="matmuls")
    assert (bundle.info["dtype"], bundle.info["attention"], bundle.info["remat_policy"]) == (
        "float32", "diffusers", "matmuls")
    assert bundle.model.remat_policy == "matmuls" and bundle.model.attention == "diffusers"
