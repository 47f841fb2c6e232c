"""Model families behind one interface. The registry is an explicit dict: no import strings."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from pathlib import Path

import jax

from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models.base import DiffusionModel, ModelBundle, TextCond, Tokens

# diffusers' Flax code still calls these removed aliases (to_bf16, to_fp16, ...).
for _name in ("tree_map", "tree_flatten", "tree_unflatten", "tree_leaves"):
    if not hasattr(jax, _name):
        setattr(jax, _name, getattr(jax.tree_util, _name))
warnings.filterwarnings("ignore", message="Flax classes are deprecated")


class _DropFlaxDeprecation(logging.Filter):
    """diffusers logs a deprecation line on every Flax load; pinning 0.39.0 is our answer to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Flax classes are deprecated" not in record.getMessage()


def _quiet_diffusers() -> None:
    from diffusers.utils import logging as dlog
    for handler in dlog._get_library_root_logger().handlers:
        handler.addFilter(_DropFlaxDeprecation())


_quiet_diffusers()


def _load_sd(model: str, **kw) -> ModelBundle:
    from jaxsteer.models import sd
    return sd.load(model, **kw)


def _load_sdxl(model: str, **kw) -> ModelBundle:
    from jaxsteer.models import sdxl
    return sdxl.load(model, **kw)


REGISTRY = {"sd": _load_sd, "sdxl": _load_sdxl}


def detect_family(folder: Path) -> str:
    """sdxl if the pipeline has a second text encoder, else sd."""
    index = folder / "model_index.json"
    if index.exists() and "text_encoder_2" in json.loads(index.read_text()):
        return "sdxl"
    return "sd"


def load(model: str, family: str | None = None, **kw) -> ModelBundle:
    """Loads a model by hub id, local folder, or bundled name, as a `ModelBundle`.

    Args:
      model: hub id ("stabilityai/sd-turbo"), local pipeline folder, or "shapes".
      family: "sd" or "sdxl"; detected from the folder when None.
      **kw: dtype ("float32" | "bfloat16"), revision, allow_pickle.
    """
    from jaxsteer.models.weights import resolve_folder
    from jaxsteer.models import bundled
    if model in bundled.NAMES:
        return bundled.load(model, **kw)
    if family is None:
        folder = resolve_folder(model, kw.get("revision"), kw.get("allow_pickle", False))
        family = detect_family(folder)
    if family not in REGISTRY:
        raise UserError(f"unknown model family {family!r}: use one of {', '.join(REGISTRY)}")
    return REGISTRY[family](model, **kw)




@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model to load and how; every run config that loads a model inherits these fields."""

    model: str = opt("tiny", "hub id, local diffusers pipeline folder, or a bundled model "
                      "(shapes, shapes-turbo, tiny)")
    family: str | None = opt(None, "sd | sdxl; detected from the folder when unset")
    dtype: str = opt("float32", "parameter and activation dtype: float32 | bfloat16")
    revision: str | None = opt(None, "hub revision (branch, tag or commit) of the model")
    allow_pickle: bool = opt(False, "allow pickled PyTorch .bin weights (runs code from the "
                              "file: only for files you trust; needs the torch extra)")

    attention: str = opt("diffusers", "UNet attention: diffusers | xla | cudnn | auto (auto = "
                          "cuDNN flash attention on NVIDIA GPUs in bf16, else XLA)",
                          choices=("diffusers", "xla", "cudnn", "auto"))

    def load_model(self) -> ModelBundle:
        return load(self.model, family=self.family, dtype=self.dtype, revision=self.revision,
                    allow_pickle=self.allow_pickle, attention=self.attention)


__all__ = ["DiffusionModel", "ModelBundle", "ModelConfig", "TextCond", "Tokens", "load", "REGISTRY"]
