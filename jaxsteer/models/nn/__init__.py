"""jaxsteer's own Flax networks: the SD/SDXL UNet, the CLIP text encoders, AutoencoderKL.

They replace diffusers' Flax classes (removed in diffusers 0.40) and transformers'
``FlaxCLIPTextModel`` (removed in transformers 5). Their parameter trees have the names and
shapes of those classes' trees, so Flax msgpack files written by diffusers 0.39 / transformers 4
(the bundled shapes model, users' run folders) load unchanged; PyTorch safetensors are converted
by ``convert.py`` without torch.

Why linen, not NNX: every jaxsteer kernel is a pure ``params -> gradients`` function with the
parameters passed as a pytree argument under ``jit`` / ``grad`` / ``vmap``. A linen module is a
stateless definition (hashable, a static argument) and ``module.apply({"params": p}, ...)`` is
that pure function as it stands; an NNX module holds its own arrays and needs ``nnx.split`` /
``nnx.merge`` around every transform to get the same. Linen also gives the diffusers-Flax tree
layout for free (submodule names are attribute names), which keeps every stored tree loading.

Options are plain module fields: ``attention`` (an attention kernel name or function, see
``layers.attention_fn``) and ``remat`` (``models.remat`` policies; ``blocks`` rematerialises each
resnet / transformer block, any other policy the whole forward and, inside it, the body of each
scanned stack of transformer blocks: ``UNetConfig.scan_layers``, and always under ``blocks``).
Group norm, layer norm and GEGLU are custom VJPs (``fused.py``) with flax's parameter names.
"""

from jaxsteer.models.nn.clip import CLIPTextConfig, CLIPTextModel, CLIPTextOutput
from jaxsteer.models.nn.unet import UNet2DConditionModel, UNetConfig
from jaxsteer.models.nn.vae import AutoencoderKL, VAEConfig

__all__ = ["AutoencoderKL", "CLIPTextConfig", "CLIPTextModel", "CLIPTextOutput",
           "UNet2DConditionModel", "UNetConfig", "VAEConfig"]
