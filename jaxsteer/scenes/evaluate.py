"""Probe-based quality of a scenes model, sampled through the library's own path.

The folder is loaded with `jaxsteer.models.load` (as every command loads it) and sampled with
`jaxsteer.sampling.generate` and the model's VAE decode; the probe reads each sample's factors
and the table gives, per caption, the share of samples that obey each factor the caption fixes
(and all of them), and the share of valid samples (a shape found).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.records import atomic_write_text
from jaxsteer.scenes.captions import FACTORS, obeys, spec
from jaxsteer.scenes.probe import measure
from jaxsteer.scenes.prompts import complexity_prompts


def default_captions() -> list[str]:
    """One tuning caption per free-factor count of the tune split (0..7, length-matched), then
    "a shape" (all 8 free: a test-split meaning, kept here for the quality table only)."""
    return [c for n, cs in complexity_prompts("tune", 1).items() for c in cs] + ["a shape"]


@functools.lru_cache(maxsize=4)
def _sampler(model):
    from jaxsteer.sampling import generate

    def sample(params, cond, uncond, keys, sched, guidance):
        return model.decode(params, generate(model, params, cond, uncond, keys, sched, guidance))

    return jax.jit(sample)


def sample(bundle, caption: str, n: int, key: jax.Array, steps: int, guidance: float,
           batch: int = 256) -> np.ndarray:
    """[n, H, W, 3] images of one caption in [-1, 1] (sample i's key: ``split(key, n)[i]``)."""
    from jaxsteer.sampling import SamplerConfig

    model, params = bundle.model, bundle.params
    sampler = SamplerConfig(steps=steps, guidance=guidance)
    sched = sampler.schedule(model)
    cond = model.encode_text(params, jnp.asarray(model.tokenize(caption).ids_et)[None])
    uncond = None
    if sampler.use_cfg:
        ids = jnp.asarray(model.tokenize("", allow_empty=True).ids_et)[None]
        uncond = jax.tree.map(lambda a: a[0], model.encode_text(params, ids))
    keys = jax.random.split(key, n)
    out = []
    for s in range(0, n, batch):
        k = keys[s:s + batch]
        b = k.shape[0]
        c = jax.tree.map(lambda a, b=b: jnp.broadcast_to(a, (b, *a.shape[1:])), cond)
        out.append(np.asarray(_sampler(model)(params, c, uncond, k, sched,
                                              jnp.float32(guidance))))
    return np.concatenate(out)


def score(caption: str, images: np.ndarray) -> dict:
    """{"caption", "n", "valid", "all_fixed", "<factor>": share obeying} for fixed factors."""
    m, s = measure(images), spec(caption)
    row = {"caption": caption, "n": len(images), "valid": float(m["valid"].mean())}
    ok = m["valid"].copy()
    for f in s.fixed:
        right = obeys(s, f, m[f]) & m["valid"]
        row[f] = float(right.mean())
        ok &= right
    row["all_fixed"] = float(ok.mean()) if s.fixed else None
    return row


def quality_table(folder: str | Path, captions: list[str] | None = None, n: int = 64,
                  steps: int = 50, guidance: float = 3.0, seed: int = 0) -> list[dict]:
    """`score` rows of ``n`` samples for each caption (default `default_captions`)."""
    from jaxsteer.models import load

    bundle = load(str(folder), dtype="float32")
    key = jax.random.key(seed)
    return [score(c, sample(bundle, c, n, jax.random.fold_in(key, i), steps, guidance))
            for i, c in enumerate(captions or default_captions())]


def write_table(rows: list[dict], path: str | Path) -> None:
    """The rows as a Markdown table (blank: the caption leaves the factor free)."""
    head = ["caption", "valid", *FACTORS, "all_fixed"]
    cell = lambda v: "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(r.get(h)) for h in head) + " |" for r in rows]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


__all__ = ["default_captions", "quality_table", "sample", "score", "write_table"]
