"""Model families behind one interface. The registry is an explicit dict: no import strings."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.attention import nvidia_gpu
from jaxsteer.models.base import DiffusionModel, ModelBundle, TextCond, Tokens
from jaxsteer.models.remat import REMAT_POLICIES
from jaxsteer.models.weights import resolve_folder
from jaxsteer.sharding import to_default_device


# The family loaders import their module when a model of that family is loaded: at module level
# `import jaxsteer` (so `jaxsteer --help`) would import every family's network code.
def _load_sd(model: str, **kw) -> ModelBundle:
    from jaxsteer.models import sd
    return sd.load(model, **kw)


def _load_sdxl(model: str, **kw) -> ModelBundle:
    from jaxsteer.models import sdxl
    return sdxl.load(model, **kw)


def _load_flux(model: str, **kw) -> ModelBundle:
    from jaxsteer.models import flux
    return flux.load(model, **kw)


REGISTRY = {"sd": _load_sd, "sdxl": _load_sdxl, "flux": _load_flux}


def detect_family(folder: Path) -> str:
    """flux for a FluxPipeline (or a folder with a transformer/), sdxl if the pipeline has a
    second text encoder, else sd."""
    index = folder / "model_index.json"
    entries = json.loads(index.read_text()) if index.exists() else {}
    if entries.get("_class_name", "").startswith("Flux") or (folder / "transformer").is_dir():
        return "flux"
    if "text_encoder_2" in entries:
        return "sdxl"
    return "sd"


DTYPES = ("auto", "float32", "bfloat16")
ATTENTIONS = ("auto", "diffusers", "xla", "cudnn")


def resolve_dtype(dtype: str = "auto") -> str:
    """``auto``: bfloat16 on GPUs and TPUs (gradient cosine to float32 >= 0.99, README), float32
    on the CPU (where bf16 is slow and the tests compare numbers tightly). Other names pass
    through (the loaders also take float16 / float64)."""
    if dtype != "auto":
        return dtype
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def resolve_attention(attention: str = "auto", dtype: str = "float32") -> str:
    """``auto``: on NVIDIA GPUs in 16-bit stays ``auto`` (cuDNN flash attention wherever its
    shape and head-size limits allow, per call: `jaxsteer.models.attention.attend`), XLA's
    attention on other accelerators, diffusers' own on the CPU."""
    if attention not in ATTENTIONS:
        raise UserError(f"--attention must be one of {', '.join(ATTENTIONS)}, got {attention!r}")
    if attention != "auto":
        return attention

    if jax.devices()[0].platform == "cpu":
        return "diffusers"
    return "auto" if nvidia_gpu() and dtype in ("bfloat16", "float16") else "xla"


def resolve_remat_policy(policy: str = "auto") -> str:
    """``auto``: ``matmuls`` on GPUs and TPUs (about half the activation memory of ``none`` for a
    few percent of speed: SDXL at 1024², 16 pairs in 63.6 GiB at 29.2 grads/s on an H100, where
    ``none`` fits 8 pairs at 29.6), ``none`` on the CPU."""
    if policy not in ("auto", *REMAT_POLICIES):
        raise UserError(f"--remat-policy must be auto or one of {', '.join(REMAT_POLICIES)}, "
                        f"got {policy!r}")
    if policy != "auto":
        return policy
    return "none" if jax.default_backend() == "cpu" else "matmuls"


def load(model: str, family: str | None = None, **kw) -> ModelBundle:
    """Loads a model by hub id, local folder, or bundled name, as a `ModelBundle`.

    Args:
      model: hub id ("stabilityai/sd-turbo"), local pipeline folder, or "shapes".
      family: "sd", "sdxl" or "flux"; detected from the folder when None.
      **kw: dtype ("auto" | "float32" | "bfloat16"), attention (see `resolve_attention`),
        remat_policy (`jaxsteer.models.remat`), revision, allow_pickle.
    """
    # lazy as the family loaders above: bundled imports every family (and shapes/)
    from jaxsteer.models import bundled

    kw["dtype"] = resolve_dtype(kw.get("dtype", "auto"))
    kw["attention"] = resolve_attention(kw.get("attention", "auto"), kw["dtype"])
    kw["remat_policy"] = resolve_remat_policy(kw.get("remat_policy", "auto"))
    if model in bundled.NAMES:
        bundle = bundled.load(model, **kw)
    else:
        if family is None:
            folder = resolve_folder(model, kw.get("revision"), kw.get("allow_pickle", False))
            family = detect_family(folder)
        if family not in REGISTRY:
            raise UserError(f"unknown model family {family!r}: use one of {', '.join(REGISTRY)}")
        bundle = REGISTRY[family](model, **kw)
    return dataclasses.replace(bundle, params=to_default_device(bundle.params))




@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model to load and how: the ``model`` field of every run config that loads a model
    (``--model.dtype``, or the short ``--dtype``: `config.aliases`)."""

    __config_aliases__ = {"name": "model"}   # --model ID is the short flag of model.name

    name: str = opt("tiny", "hub id, local diffusers pipeline folder, or a bundled model "
                      "(shapes, shapes-turbo, shapes-student, scenes, scenes-student, tiny, "
                      "tiny-xl, tiny-flux)")
    family: str | None = opt(None, "sd | sdxl | flux; detected from the folder when unset")
    dtype: str = opt("auto", "parameter and activation dtype: auto (bfloat16 on GPUs and TPUs, "
                     "float32 on the CPU) | float32 | bfloat16", choices=DTYPES)
    revision: str | None = opt(None, "hub revision (branch, tag or commit) of the model")
    allow_pickle: bool = opt(False, "allow pickled PyTorch .bin weights (runs code from the "
                              "file: only for files you trust; needs the torch extra)")

    attention: str = opt("auto", "UNet attention: auto (cuDNN flash attention on NVIDIA GPUs "
                         "in bf16, XLA's on TPUs, diffusers' on the CPU) | diffusers | xla | "
                         "cudnn", choices=ATTENTIONS)
    remat_policy: str = opt("auto", "what the UNet keeps for the backward pass: auto (matmuls "
                            "on GPUs and TPUs, none on the CPU) | none | matmuls (recompute "
                            "only elementwise work: about half the memory) | blocks | dots | "
                            "dots_all | full (see jaxsteer.models.remat)",
                            choices=("auto", *REMAT_POLICIES))

    def load_model(self) -> ModelBundle:
        return load(self.name, family=self.family, dtype=self.dtype, revision=self.revision,
                    allow_pickle=self.allow_pickle, attention=self.attention,
                    remat_policy=self.remat_policy)


__all__ = ["REGISTRY", "DiffusionModel", "ModelBundle", "ModelConfig", "TextCond", "Tokens", "load"]
