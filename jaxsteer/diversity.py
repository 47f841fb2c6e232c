"""Diversity for distilled few-step models (DESIGN.md section 1.6) and the metrics to measure it.

For each new sample, a random steering offset is added to the word's token rows on the
conditional branch: by default one direction drawn at random with a strength drawn uniformly from
a range (the authors' SDXL-DMD2 ranges: 30-40 for PCA directions, 50-60 for SAE directions, as
absolute strengths); ``mix > 1`` uses the normalised sum of that many random directions (the
paper's variant, 3); ``mode="gaussian"`` draws beta ~ N(0, sigma^2) over the top-k directions,
scaled by their share of the spectrum.

Metrics work on any feature embeddings [n, f] (DreamSim or CLIP image features when the user has
the weights; plain downsampled pixels otherwise): the mean pairwise cosine distance over all
pairs, and the Vendi score (exp of the entropy of the eigenvalues of K / n, K the cosine
similarity matrix: 1 for identical items, n for mutually orthogonal ones).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import checkpoint, records, sharding
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig
from jaxsteer.steer import (
    check_compatible,
    direction_rows,
    grid_png,
    render_batches,
    row_scale,
    steered_cond,
)


def _unit(x_nf: jax.Array) -> jax.Array:
    x = x_nf.reshape(x_nf.shape[0], -1).astype(jnp.float32)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def mean_pairwise_cosine_distance(feats_nf: jax.Array) -> jax.Array:
    """Mean of 1 - cos over all unordered pairs of distinct items."""
    u = _unit(feats_nf)
    n = u.shape[0]
    if n < 2:
        raise UserError("diversity needs at least 2 samples")
    sim = u @ u.T
    off = jnp.sum(sim) - jnp.trace(sim)
    return 1.0 - off / (n * (n - 1))


def vendi_score(feats_nf: jax.Array) -> jax.Array:
    """exp(-sum l log l) over the eigenvalues l of K / n, K the cosine similarity matrix."""
    u = _unit(feats_nf)
    lam = jnp.clip(jnp.linalg.eigvalsh(u @ u.T / u.shape[0]), 0.0, None)
    lam = lam / jnp.sum(lam)
    return jnp.exp(-jnp.sum(jnp.where(lam > 0, lam * jnp.log(jnp.where(lam > 0, lam, 1.0)), 0.0)))


def pixel_features(images_bhwc: jax.Array, size: int = 16) -> jax.Array:
    """A weights-free stand-in feature: images average-pooled to size x size, centred."""
    b, h, w, c = images_bhwc.shape
    fh, fw = max(h // size, 1), max(w // size, 1)
    pooled = images_bhwc[:, : h - h % fh, : w - w % fw].reshape(b, h // fh, fh, w // fw, fw, c)
    x = pooled.mean((2, 4)).reshape(b, -1)
    return x - x.mean(0, keepdims=True)


def random_offsets(key: jax.Array, dirs_kd: jax.Array, n: int, strength: tuple[float, float],
                   mix: int = 1, mode: str = "uniform",
                   spectrum_k: jax.Array | None = None, sigma: float = 1.0) -> jax.Array:
    """[n, d] random steering offsets, one per new sample.

    uniform: ``s * normalise(sum of mix random directions)``, s ~ U[strength];
    gaussian: ``sum_i beta_i * w_i * u_i``, beta ~ N(0, sigma^2), w_i = sqrt(spectrum share) *
    mean(strength), over all k directions.
    """
    k = dirs_kd.shape[0]
    k_pick, k_s = jax.random.split(key)
    if mode == "gaussian":
        share = (jnp.ones(k) / k if spectrum_k is None
                 else spectrum_k[:k] / jnp.sum(spectrum_k[:k]))
        beta = sigma * jax.random.normal(k_pick, (n, k))
        return (beta * jnp.sqrt(share) * (sum(strength) / 2)) @ dirs_kd
    if mode != "uniform":
        raise UserError(f"unknown diversity mode {mode!r}: uniform | gaussian")
    if not 1 <= mix <= k:
        raise UserError(f"--mix must be in [1, {k}] for {k} directions, got {mix}")
    picks = jax.vmap(lambda kk: jax.random.choice(kk, k, (mix,), replace=False))(
        jax.random.split(k_pick, n))
    d = dirs_kd[picks].sum(1)
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    s = jax.random.uniform(k_s, (n, 1), minval=strength[0], maxval=strength[1])
    return s * d


@dataclasses.dataclass(frozen=True)
class DiversifyRun(ModelConfig, SamplerConfig):
    directions: Path = opt(Path("."), "DirectionSet checkpoint", positional=True)
    n: int = opt(32, "samples with and without steering (same seeds)")
    strength: tuple[float, ...] = opt((30.0, 40.0), "strength range lo,hi (authors, SDXL-DMD2: "
                                      "30,40 PCA; 50,60 SAE)")
    relative: bool = opt(False, "strengths are multiples of the word rows' norm, not absolute")
    mix: int = opt(1, "directions summed per sample (the paper's variant: 3)")
    mode: str = opt("uniform", "uniform (random direction, U[strength]) | gaussian",
                    choices=("uniform", "gaussian"))
    top: int = opt(0, "use only the first `top` directions (0 = all)")
    alignment: str = opt("none", "alignment measure: none | shapes (share of images whose "
                         "caption-fixed factors the probe reads back right; shapes model)",
                         choices=("none", "shapes"))
    seed: int = opt(0, "seed of the samples and of the random directions")
    batch: int = opt(16, "images per compiled call")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/diversify"), "output folder (grids and diversity.json)")

    def __post_init__(self):
        SamplerConfig.__post_init__(self)
        if len(self.strength) != 2 or self.strength[0] > self.strength[1]:
            raise UserError(f"--strength must be lo,hi with lo <= hi, got {self.strength}")
        if self.n < 2:
            raise UserError(f"--n must be >= 2, got {self.n}")


def run(cfg: DiversifyRun, features: Callable | None = None,
        alignment: Callable | None = None) -> dict:
    """Renders ``n`` samples with and without random steering on the same seeds, and compares.

    ``features(images) -> [n, f]`` defaults to pooled pixels; ``alignment(images) -> [n]`` is
    optional (CLIP score against the prompt, or the caption's fixed factors on the shapes model).
    """
    records.check_out(cfg.out)
    ds = checkpoint.load(cfg.directions)
    meta = ds.metadata
    if alignment is None and cfg.alignment == "shapes":
        from jaxsteer.shapes.evaluate import score
        alignment = lambda imgs: score([meta["prompt"]] * len(imgs), np.asarray(imgs))["fixed"]  # noqa: E731
    bundle = cfg.load_model()
    check_compatible(meta, ds.dim, bundle, cfg.model)
    rows = tuple(meta["token_rows"])
    dirs = np.asarray(ds.directions)[: cfg.top or None]
    cond, uncond = encode_prompt(bundle, meta["prompt"], cfg.use_cfg)
    scale = row_scale(cond.emb, rows) if cfg.relative else 1.0
    key_s, key_d = jax.random.split(jax.random.key(cfg.seed))
    ratio = ds.explained_variance_ratio
    spectrum = None if ratio is None else jnp.asarray(ratio)
    offs = random_offsets(key_d, jnp.asarray(dirs), cfg.n,
                          (cfg.strength[0] * scale, cfg.strength[1] * scale), cfg.mix, cfg.mode,
                          spectrum)
    offs_nrd = direction_rows(np.asarray(offs), len(rows))
    keys = jax.random.split(key_s, cfg.n)
    mesh = sharding.local_mesh(cfg.devices)
    plain = render_batches(bundle, cfg, mesh, steered_cond(cond, rows, None, n=cfg.n), uncond,
                           keys, cfg.batch)
    varied = render_batches(bundle, cfg, mesh, steered_cond(cond, rows, offs_nrd), uncond, keys,
                            cfg.batch)
    features = features or pixel_features
    result = {}
    for name, imgs in (("without", plain), ("with", varied)):
        f = features(jnp.asarray(imgs))
        result[name] = {"pairwise_cosine_distance": float(mean_pairwise_cosine_distance(f)),
                        "vendi": float(vendi_score(f))}
        if alignment is not None:
            result[name]["alignment"] = float(jnp.mean(alignment(imgs)))
    cols = min(cfg.n, 8)
    for name, imgs in (("without", plain), ("with", varied)):
        png = grid_png(imgs[None, :cols], [name], [str(i) for i in range(cols)])
        records.atomic_write_bytes(cfg.out / f"samples_{name}.png", png)
    records.write_json(cfg.out / "diversity.json", result)
    print(f"{'':10}{'pairwise cos dist':>20}{'Vendi':>10}{'alignment':>12}")
    for name in ("without", "with"):
        r = result[name]
        align = f"{r['alignment']:>12.3f}" if "alignment" in r else f"{'-':>12}"
        print(f"{name:10}{r['pairwise_cosine_distance']:>20.4f}{r['vendi']:>10.3f}{align}")
    return result | {"out": str(cfg.out)}
