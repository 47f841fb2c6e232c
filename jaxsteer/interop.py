"""Directions for the PyTorch world: a plain safetensors file and a NumPy steering function.

jaxsteer's directions are offsets to the text encoder's per-token output, the rows of what
diffusers pipelines take as ``prompt_embeds``; so a direction found here can steer a PyTorch
pipeline given the same model. `export` writes a DirectionSet in this layout (README,
"Directions in PyTorch"); `steer_prompt_embeds` applies it to arrays with NumPy only:

tensors   directions [k, r, d] float32 unit rows, split per token row; mean [r, d]; and where
          present singular_values [m], explained_variance_ratio [m] (PCA), density [k] (SAE)
metadata  format "jaxsteer.directions/1", model, prompt, token, token_rows (JSON list),
          embed_dim, method, strength_unit ("row_norm": an alpha is a multiple of the mean L2
          norm of the token rows of the prompt's embedding, as in `jaxsteer steer`)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import checkpoint, records, sharding
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.sample import encode_prompt
from jaxsteer.steer import render_batches, resolve_directions, steered_cond

FORMAT = "jaxsteer.directions/1"


def row_norm(prompt_embeds_td: np.ndarray, word_rows) -> float:
    """The unit of a relative strength: mean L2 norm of the word's rows of one prompt.

    The same rule as `jaxsteer.steer.row_scale`, kept here so that PyTorch code can use this
    module without importing jax (steer.py does); tests/test_interop.py holds them equal."""
    rows = np.asarray(prompt_embeds_td, np.float64)[list(word_rows)]
    return float(np.mean(np.linalg.norm(rows, axis=-1)))


def steer_prompt_embeds(prompt_embeds, directions, word_rows, alphas, relative: bool = True):
    """``prompt_embeds`` with ``sum_i alphas[i] * directions[i]`` added at ``word_rows``.

    Args:
      prompt_embeds: [t, d] or [b, t, d] (a diffusers pipeline's ``prompt_embeds``, as NumPy;
        for torch tensors pass ``.cpu().float().numpy()`` and convert back).
      directions: [k, r, d] or [k, r * d] (the exported file's ``directions``), or one
        direction [r, d].
      word_rows: the r token rows the directions belong to (the file's ``token_rows``).
      alphas: one strength per direction (a scalar for a single direction).
      relative: alphas are multiples of `row_norm` of each prompt (the file's strength unit,
        what `jaxsteer steer` does by default); False: raw strengths.

    Returns: an array of ``prompt_embeds``' shape and dtype.
    """
    emb = np.asarray(prompt_embeds)
    rows = [int(r) for r in word_rows]
    dirs = np.asarray(directions, np.float64)
    if dirs.ndim == 2 and dirs.shape == (len(rows), emb.shape[-1]):
        dirs = dirs[None]
    dirs = dirs.reshape(dirs.shape[0], len(rows), emb.shape[-1])
    alphas = np.broadcast_to(np.asarray(alphas, np.float64), (dirs.shape[0],))
    offset_rd = np.tensordot(alphas, dirs, axes=1)
    batched = emb if emb.ndim == 3 else emb[None]
    out = batched.astype(np.float64)
    for b in range(len(out)):
        scale = row_norm(batched[b], rows) if relative else 1.0
        out[b, rows] += scale * offset_rd
    out = out.astype(emb.dtype)
    return out if emb.ndim == 3 else out[0]


def exported_tensors(ds) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and string metadata of a DirectionSet in the exported layout."""
    meta = ds.metadata
    rows = list(meta.get("token_rows") or [])
    if not rows or ds.dim % len(rows):
        raise UserError("the DirectionSet records no token rows that split its width: it was "
                        "not made by `jaxsteer decompose` on a collect run")
    r, d = len(rows), ds.dim // len(rows)
    tensors = {"directions": np.asarray(ds.directions, np.float32).reshape(ds.k, r, d),
               "mean": np.asarray(ds.mean, np.float32).reshape(r, d)}
    for name in ("singular_values", "explained_variance_ratio", "density"):
        value = getattr(ds, name)
        if value is not None:
            tensors[name] = np.asarray(value, np.float32)
    info = {"format": FORMAT, "model": str(meta.get("model", "")),
            "prompt": str(meta.get("prompt", "")), "token": str(meta.get("token", "")),
            "token_rows": json.dumps(rows), "embed_dim": str(d), "method": ds.method,
            "strength_unit": "row_norm"}
    return tensors, info


def read_exported(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, metadata with token_rows as a list and embed_dim as an int) of an export."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), "numpy") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - the reader's error types are not a contract
        raise UserError(f"cannot read {path} as a jaxsteer directions file "
                        f"({type(e).__name__})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a jaxsteer directions file (format "
                        f"{meta.get('format')!r}, expected {FORMAT!r})")
    meta["token_rows"] = json.loads(meta["token_rows"])
    meta["embed_dim"] = int(meta["embed_dim"])
    return tensors, meta


@dataclasses.dataclass(frozen=True)
class ExportRun:
    directions: Path = opt(Path("."), "DirectionSet checkpoint, or a collect run folder holding "
                           "one", positional=True)
    format: str = opt("safetensors", "file format", choices=("safetensors",))
    out: Path | None = opt(None, "output file [<directions>.safetensors]")


def run(cfg: ExportRun) -> dict:
    path = resolve_directions(cfg.directions)
    out = cfg.out or path.with_name(path.name + ".safetensors")
    records.check_out(out, file=True)
    ds = checkpoint.load(path)
    tensors, info = exported_tensors(ds)
    digest = records.save_arrays(out, tensors, info)
    return {"out": str(out), "k": ds.k, "token_rows": json.loads(info["token_rows"]),
            "embed_dim": int(info["embed_dim"]), "sha256": digest}


def render_exported(bundle, tensors: dict, meta: dict, index: int, alpha: float, seed: int,
                    sampler, mesh=None) -> tuple[np.ndarray, np.ndarray]:
    """jaxsteer's own render of one exported direction: what a diffusers pipeline given
    `steer_prompt_embeds`' output as ``prompt_embeds`` (and ``x_T`` as ``latents``) must match.

    The prompt and rows are the file's; ``alpha`` is relative (``row_norm``); guidance above 1
    steers the conditional branch only, as `jaxsteer steer` does. Returns (image [H, W, 3] in
    [-1, 1], the starting noise x_T [c, h, w] of ``seed``).
    """
    mesh = mesh or sharding.make_mesh(devices=jax.devices()[:1])
    cond, uncond = encode_prompt(bundle, meta["prompt"], sampler.use_cfg)
    rows = tuple(int(r) for r in meta["token_rows"])
    offsets = jnp.asarray(tensors["directions"][[index]])
    strength = alpha * row_norm(np.asarray(cond.emb), rows)
    cond_b = steered_cond(cond, rows, offsets, jnp.asarray([strength], jnp.float32))
    keys = jax.vmap(jax.random.key)(jnp.asarray([seed]))
    image = render_batches(bundle, sampler, mesh, cond_b, uncond, keys, 1)[0]
    # The start `jaxsteer.sampling.generate` draws for this key.
    x_t = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0),
                                               bundle.model.latent_shape, jnp.float32))(keys)
    return np.asarray(image), np.asarray(x_t[0])
