"""Diversity for distilled few-step models (DESIGN.md section 1.6) and the metrics to measure it.

For each new sample, a random steering offset is added to the word's token rows on the
conditional branch: by default one direction drawn at random with a strength drawn uniformly from
a range (the authors' SDXL-DMD2 ranges: 30-40 for PCA directions, 50-60 for SAE directions, as
absolute strengths); ``mix > 1`` uses the normalised sum of that many random directions (the
paper's variant, 3); ``mode="gaussian"`` draws beta ~ N(0, sigma^2) over the top-k directions,
scaled by their share of the spectrum.

The baseline (``--baseline``) is diversity distillation (Gandikota & Bau 2025, "Distilling
Diversity and Control in Diffusion Models"): the distilled model commits to its image's
structure at its first step, so the base model takes the first step(s) of the distilled
model's schedule and the distilled model the rest, at the price of the base model's calls.

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
from jaxsteer.config import check_sections, opt
from jaxsteer.distill.collapse import factor_spreads, spread_ratio
from jaxsteer.diversity_distillation import distilled_diversity
from jaxsteer.errors import UserError
from jaxsteer.models import ModelConfig
from jaxsteer.models.bundled import PRESETS, STUDENTS
from jaxsteer.sample import encode_prompt
from jaxsteer.sampling import SamplerConfig
from jaxsteer.shapes.evaluate import score
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


MODES = ("uniform", "gaussian")   # random_offsets' draws


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
        raise UserError(f"unknown diversity mode {mode!r}: {' | '.join(MODES)}")
    if not 1 <= mix <= k:
        raise UserError(f"--mix must be in [1, {k}] for {k} directions, got {mix}")
    picks = jax.vmap(lambda kk: jax.random.choice(kk, k, (mix,), replace=False))(
        jax.random.split(k_pick, n))
    d = dirs_kd[picks].sum(1)
    d = d / jnp.maximum(jnp.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    s = jax.random.uniform(k_s, (n, 1), minval=strength[0], maxval=strength[1])
    return s * d


@dataclasses.dataclass(frozen=True)
class DiversifyRun:
    sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="sampler settings")
    model: ModelConfig = opt(default_factory=ModelConfig, help="which model, and how to load it")
    directions: Path = opt(Path("."), "DirectionSet checkpoint", positional=True)
    n: int = opt(32, "samples with and without steering (same seeds)")
    strength: tuple[float, ...] = opt((30.0, 40.0), "strength range lo,hi (authors, SDXL-DMD2: "
                                      "30,40 PCA; 50,60 SAE)")
    relative: bool = opt(False, "strengths are multiples of the word rows' norm, not absolute")
    mix: int = opt(1, "directions summed per sample (the paper's variant: 3)")
    mode: str = opt("uniform", "uniform (random direction, U[strength]) | gaussian",
                    choices=MODES)
    top: int = opt(0, "use only the first `top` directions (0 = all)")
    alignment: str = opt("none", "alignment measure: none | shapes (share of images whose "
                         "caption-fixed factors the probe reads back right; shapes model)",
                         choices=("none", "shapes"))
    baseline: bool = opt(False, "also diversity distillation (Gandikota & Bau 2025) on the "
                         "same seeds: the base model for the first --baseline-steps steps, this "
                         "model after")
    baseline_steps: tuple[int, ...] = opt((1,), "base-model steps of --baseline, one variant "
                                          "each (each in 1..steps-1; the authors: 1)")
    base_model: str | None = opt(None, "base model of --baseline (default: the bundled "
                                 "student's teacher: shapes for shapes-student)")
    base_guidance: float | None = opt(None, "CFG scale of the base model's steps (default: its "
                                      "bundled preset's, else 5)")
    seed: int = opt(0, "seed of the samples and of the random directions")
    batch: int = opt(16, "images per compiled call")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/diversify"), "output folder (grids and diversity.json)")

    def __post_init__(self):
        check_sections(self)
        if len(self.strength) != 2 or self.strength[0] > self.strength[1]:
            raise UserError(f"--strength must be lo,hi with lo <= hi, got {self.strength}")
        if self.n < 2:
            raise UserError(f"--n must be >= 2, got {self.n}")
        if self.baseline:
            steps = self.sampler.steps
            bad = [k for k in self.baseline_steps if not 1 <= k < steps]
            if bad or not self.baseline_steps:
                raise UserError(f"--baseline-steps must each be in 1..{steps - 1} (the base "
                                f"model hands over to a {steps}-step sampler), got "
                                f"{self.baseline_steps}")
            self.base()  # a missing base is refused before anything loads

    def base(self) -> tuple[str, float]:
        """(base model, its CFG scale) of the baseline."""
        name = self.base_model or STUDENTS.get(self.model.name)
        if name is None:
            raise UserError(f"--baseline needs --base-model: the model {self.model.name!r} was "
                            "distilled from (e.g. stabilityai/stable-diffusion-xl-base-1.0)")
        w = self.base_guidance
        return name, float(PRESETS.get(name, {}).get("guidance", 5.0) if w is None else w)


def run(cfg: DiversifyRun, features: Callable | None = None,
        alignment: Callable | None = None) -> dict:
    """Renders ``n`` samples with and without random steering on the same seeds (and, with
    ``--baseline``, diversity distillation's on them too), and compares.

    Every entry of the result has the pairwise cosine distance, the Vendi score, the denoiser
    calls per image ({"base", "student"}), the alignment when there is a measure, and on the
    shapes world (``--alignment shapes``) the probe's spread of each free factor and its ratio
    to the model's own ("without").

    ``features(images) -> [n, f]`` defaults to pooled pixels; ``alignment(images) -> [n]`` is
    optional (CLIP score against the prompt, or the caption's fixed factors on the shapes model).
    """
    records.check_out(cfg.out)
    ds = checkpoint.load(cfg.directions)
    meta = ds.metadata
    if alignment is None and cfg.alignment == "shapes":
        alignment = lambda imgs: score([meta["prompt"]] * len(imgs), np.asarray(imgs))["fixed"]  # noqa: E731
    bundle = cfg.model.load_model()
    check_compatible(meta, ds.dim, bundle, cfg.model.name)
    rows = tuple(meta["token_rows"])
    dirs = np.asarray(ds.directions)[: cfg.top or None]
    cond, uncond = encode_prompt(bundle, meta["prompt"], cfg.sampler.use_cfg)
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
    samples = {
        "without": render_batches(bundle, cfg.sampler, mesh,
                                  steered_cond(cond, rows, None, n=cfg.n), uncond, keys,
                                  cfg.batch),
        "with": render_batches(bundle, cfg.sampler, mesh, steered_cond(cond, rows, offs_nrd),
                               uncond, keys, cfg.batch)}
    per_step = 2 if cfg.sampler.use_cfg else 1
    calls = {"without": {"base": 0, "student": cfg.sampler.steps * per_step}}
    calls["with"] = calls["without"]
    if cfg.baseline:
        base_name, base_w = cfg.base()
        base = dataclasses.replace(cfg.model, name=base_name).load_model()
        for k in cfg.baseline_steps:
            samples[f"baseline_{k}"] = distilled_diversity(bundle, cfg.sampler, base, base_w,
                                                           meta["prompt"], keys, k, mesh,
                                                           cfg.batch)
            calls[f"baseline_{k}"] = {"base": k * (2 if base_w > 1.0 else 1),
                                      "student": (cfg.sampler.steps - k) * per_step}
    features = features or pixel_features
    result = {}
    for name, imgs in samples.items():
        f = features(jnp.asarray(imgs))
        result[name] = {"pairwise_cosine_distance": float(mean_pairwise_cosine_distance(f)),
                        "vendi": float(vendi_score(f)), "calls": calls[name]}
        if alignment is not None:
            result[name]["alignment"] = float(jnp.mean(alignment(imgs)))
        if cfg.alignment == "shapes":  # the probe's spreads, and their ratio to the model alone
            result[name]["spread"] = factor_spreads(meta["prompt"], imgs)["spread"]
            result[name]["spread_ratio"] = spread_ratio([result[name]], [result["without"]])
    cols = min(cfg.n, 8)
    for name, imgs in samples.items():
        png = grid_png(imgs[None, :cols], [name], [str(i) for i in range(cols)])
        records.atomic_write_bytes(cfg.out / f"samples_{name}.png", png)
    records.write_json(cfg.out / "diversity.json", result)
    print(f"{'':12}{'pairwise cos dist':>20}{'Vendi':>10}{'alignment':>12}{'spread x':>10}"
          f"{'base calls':>12}")
    for name, r in result.items():
        align = f"{r['alignment']:>12.3f}" if "alignment" in r else f"{'-':>12}"
        ratio = r.get("spread_ratio")
        ratio = f"{ratio:>10.2f}" if ratio is not None else f"{'-':>10}"
        print(f"{name:12}{r['pairwise_cosine_distance']:>20.4f}{r['vendi']:>10.3f}{align}{ratio}"
              f"{r['calls']['base']:>12}")
    return result | {"out": str(cfg.out)}
