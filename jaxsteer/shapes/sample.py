"""A small DDIM sampler with classifier-free guidance, for checking the shapes model.

Kept independent of the library's sampler on purpose: it checks the trained weights with the
plainest possible algorithm (eta = 0 DDIM, "trailing" timesteps, no clipping), so a bug in one
sampler does not hide in the other.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.shapes.model import ShapesPipeline, encode_text


def ddim_schedule(alphas_cumprod: np.ndarray, steps: int) -> tuple[np.ndarray, ...]:
    """(t_s, alpha_s, alpha_next_s), each [steps], noisiest first, "trailing" spacing."""
    n = len(alphas_cumprod)
    t_s = (np.round(np.arange(n, 0, -n / steps)) - 1).astype(np.int32)
    alpha_s = alphas_cumprod[t_s]
    alpha_next_s = np.concatenate([alpha_s[1:], [1.0]]).astype(np.float32)
    return t_s, alpha_s.astype(np.float32), alpha_next_s


def _ddim(unet: Any, text: Any, params: Any, ids_bt: jax.Array, uncond_t: jax.Array,
          x_bchw: jax.Array, t_s: jax.Array, alpha_s: jax.Array, alpha_next_s: jax.Array,
          guidance: jax.Array) -> jax.Array:
    """Runs every DDIM step from the noise ``x_bchw`` -> clean images [b, c, h, w]."""
    b = x_bchw.shape[0]
    emb = encode_text(text, params["text_encoder"], jnp.concatenate([uncond_t[None], ids_bt]))
    emb = jnp.concatenate([jnp.broadcast_to(emb[:1], (b, *emb.shape[1:])), emb[1:]])  # [2b, t, d]

    def body(x, step):
        t, a, a_next = step
        t_b = jnp.full((2 * b,), t, jnp.int32)
        out = unet.apply({"params": params["unet"]}, jnp.concatenate([x, x]), t_b, emb)
        eps = out[:b] + guidance * (out[b:] - out[:b])
        x0 = (x - jnp.sqrt(1.0 - a) * eps) / jnp.sqrt(a)
        return jnp.sqrt(a_next) * x0 + jnp.sqrt(1.0 - a_next) * eps, None

    x, _ = jax.lax.scan(body, x_bchw, (t_s, alpha_s, alpha_next_s))
    return x


@lru_cache(maxsize=4)
def _compiled(pipe: ShapesPipeline) -> Any:
    # One compiled sampler per loaded pipeline (pipelines hash by identity).
    return jax.jit(partial(_ddim, pipe.unet, pipe.text))


def generate(pipe: ShapesPipeline, captions: list[str], key: jax.Array, steps: int = 50,
             guidance: float = 3.0, batch: int = 256) -> np.ndarray:
    """Samples one image per caption -> [n, H, W, 3] float32 numpy in [-1, 1].

    Args:
      pipe: a loaded pipeline (`model.load`).
      captions: n captions ("" is unconditional).
      key: sample i's noise is ``fold_in(key, i)``, so it does not depend on ``batch``.
      steps: DDIM steps; guidance: CFG scale w (1 = conditional only).
      batch: images per device call (the last batch is padded, so one program serves all).
    """
    fn = _compiled(pipe)
    sched = [jnp.asarray(a) for a in ddim_schedule(pipe.alphas_cumprod, steps)]
    ids = pipe.token_ids(list(captions))
    uncond = jnp.asarray(pipe.token_ids([""])[0])
    n, s = len(captions), pipe.image_size
    batch = min(batch, n)
    out = []
    for start in range(0, n, batch):
        idx = np.arange(start, start + batch)
        idx_c = np.minimum(idx, n - 1)
        noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (3, s, s)))(
            jnp.asarray(idx))
        x = fn(pipe.params, jnp.asarray(ids[idx_c]), uncond, noise, *sched,
               jnp.float32(guidance))
        out.append(np.asarray(x)[: n - start])
    images = np.concatenate(out)[:n]
    return np.clip(np.transpose(images, (0, 2, 3, 1)), -1.0, 1.0)
