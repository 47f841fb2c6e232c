"""Array aliases that carry shape names, and the axis letters used in names across jaxsteer.

Axis letters (suffixes on variable names, e.g. ``emb_td``, ``grads_prd``):
  b batch of images, p pairs, t tokens (77 for CLIP), d embedding width, r differentiated token
  rows, c latent channels, h / w latent height / width, n samples of a matrix, k directions,
  s denoising steps.
"""

from typing import Annotated, TypeAlias

import jax

Array: TypeAlias = jax.Array
Key: TypeAlias = Annotated[jax.Array, "PRNG key"]
Emb: TypeAlias = Annotated[jax.Array, "[t, d] or [b, t, d] token embeddings"]
Latents: TypeAlias = Annotated[jax.Array, "[b, c, h, w]"]
Grads: TypeAlias = Annotated[jax.Array, "[p, r, d]"]
