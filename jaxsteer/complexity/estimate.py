"""One call that runs every complexity estimator on a gradient matrix, for the survey.

Axis letters: n samples, d ambient dimension, k spectrum components, m local-estimator points.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.complexity import local, spectral
from jaxsteer.complexity.intervals import bootstrap, percentile_interval, resample_indices
from jaxsteer.complexity.vaease import VAEaseConfig, vaease_active_dims
from jaxsteer.config import opt
from jaxsteer.errors import UserError


@dataclasses.dataclass(frozen=True)
class ComplexityConfig:
    """Settings of every concept-complexity estimator (DESIGN.md section 1.7)."""

    threshold_factor: float = opt(2.5, "subspace size counts components with explained-variance "
                                       "ratio > this / D [2.5, ELROND]")
    threshold_mode: Literal["fixed", "n_dependent"] = opt(
        "fixed", "D of that threshold: fixed (the ambient dimension, the paper) | n_dependent "
        "(min(N, D), the authors' rebuttal variant)", choices=spectral.THRESHOLD_MODES)
    variance_levels: tuple[float, ...] = opt((0.9, 0.95), "fractions of variance to report the "
                                                          "number of leading components for")
    pa_null: Literal["permute", "shift", "gaussian"] = opt(
        "permute", "parallel-analysis null: each column permuted (Horn), rolled by a random "
        "offset (no sort, fast on CPU), or Gaussian with the column variances",
        choices=("permute", "shift", "gaussian"))
    pa_draws: int = opt(20, "null data sets drawn by parallel analysis (one SVD each)")
    pa_quantile: float = opt(0.95, "quantile of the null variances a component must exceed")
    mle_k: int = opt(10, "neighbours per point of the Levina-Bickel MLE")
    twonn_discard: float = opt(0.1, "fraction of the largest r2/r1 ratios TwoNN leaves out of "
                                    "its fit [0.1, Facco et al.]")
    local_max_points: int = opt(10000, "kNN estimators use at most this many rows (random "
                                       "subset); their cost grows as rows^2 * D")
    knn_chunk: int = opt(512, "rows per block of the kNN distance products (memory: block * "
                              "rows floats)")
    n_boot: int = opt(200, "bootstrap replicates of the cheap intervals (kNN, VAEase)")
    n_boot_spectral: int = opt(20, "bootstrap replicates of the PCA-based intervals, one SVD of "
                                   "the whole matrix each (0 = no interval)")
    n_boot_pa: int = opt(0, "bootstrap replicates of parallel analysis's interval, pa-draws + 1 "
                            "SVDs each (0 = no interval: off by default for that cost; "
                            "survey --ci-estimator parallel_analysis needs >= 2)")
    level: float = opt(0.95, "coverage of every confidence interval")
    vaease: VAEaseConfig = opt(default_factory=VAEaseConfig,
                               help="VAEase per-sample active dimensions")

    def __post_init__(self) -> None:
        if self.threshold_factor <= 0:
            raise UserError(f"threshold-factor must be > 0, got {self.threshold_factor}")
        if not self.variance_levels or not all(0 < v <= 1 for v in self.variance_levels):
            raise UserError(f"variance-levels must be in (0, 1], got {self.variance_levels}")
        if self.pa_draws < 1 or not 0 < self.pa_quantile < 1:
            raise UserError("pa-draws must be >= 1 and pa-quantile in (0, 1)")
        if self.mle_k < 2:
            raise UserError(f"mle-k must be >= 2, got {self.mle_k}")
        if not 0 <= self.twonn_discard < 1:
            raise UserError(f"twonn-discard must be in [0, 1), got {self.twonn_discard}")
        if self.local_max_points < self.mle_k + 2 or self.knn_chunk < 1:
            raise UserError("local-max-points must exceed mle-k + 1 and knn-chunk be >= 1")
        if self.n_boot < 2 or any(n < 0 or n == 1 for n in (self.n_boot_spectral,
                                                             self.n_boot_pa)):
            raise UserError("n-boot must be >= 2, n-boot-spectral and n-boot-pa 0 or >= 2")
        if not 0 < self.level < 1:
            raise UserError(f"level must be in (0, 1), got {self.level}")


def _entry(value: Any, ci: tuple[Any, Any] | None, **extra: Any) -> dict[str, Any]:
    """``{"value": float, "ci": [lo, hi] | None, "ci_covers_value": bool, ...}`` with plain
    Python numbers. A percentile interval can miss its own estimate: counts that reach into a
    noise floor (pca_90 / pca_95, a subspace size near N) fall on every resample, whose repeated
    rows spread the noise eigenvalues, so their interval lies below the value (the README's
    ground-truth section counts how often)."""
    out: dict[str, Any] = {"value": float(value), "ci": None}
    if ci is not None:
        lo, hi = float(ci[0]), float(ci[1])
        out.update(ci=[lo, hi], ci_covers_value=lo <= out["value"] <= hi)
    out.update(extra)
    return out


def _level_name(level: float) -> str:
    return f"pca_{100 * level:g}".replace(".", "_")


def _subset(x_nd: jax.Array, key: jax.Array, max_rows: int) -> jax.Array:
    """At most ``max_rows`` rows of ``x_nd``, drawn without replacement (all rows if fewer)."""
    n = x_nd.shape[0]
    if n <= max_rows:
        return x_nd
    return x_nd[jax.random.permutation(key, n)[:max_rows]]


@dataclasses.dataclass(frozen=True)
class SpectralStats:
    """``x_nd -> [subspace size, components for each variance level, participation ratio]`` as
    float32, from one spectrum.

    A frozen dataclass rather than a closure: it is hashable by value, so the bootstrap's
    compiled program is reused for every prompt of a survey.
    """

    dim: int
    factor: float
    levels: tuple[float, ...]

    def __call__(self, x_nd: jax.Array) -> jax.Array:
        return self.of_ratios(spectral.explained_variance_ratio(x_nd))

    def of_ratios(self, ratio_k: jax.Array) -> jax.Array:
        """The statistics of explained-variance ratios ``[k]`` already computed."""
        stats = [spectral.count_above_threshold(ratio_k, self.dim, self.factor)]
        stats += [spectral.components_for_variance(ratio_k, v) for v in self.levels]
        stats += [spectral.participation_ratio(ratio_k)]
        return jnp.stack([jnp.asarray(c, jnp.float32) for c in stats])


@dataclasses.dataclass(frozen=True)
class TwoNNFit:
    """``log_mu_n -> TwoNN dimension``, hashable by value for the same reason as above."""

    discard: float

    def __call__(self, log_mu_n: jax.Array) -> jax.Array:
        return local.twonn_from_log_ratios(log_mu_n, self.discard)


@functools.partial(jax.jit, static_argnums=0)
def _pa_replicates(pa: tuple[int, float, str], x_nd: jax.Array, k_null: jax.Array,
                   idx_bn: jax.Array) -> jax.Array:
    """``[b]`` parallel-analysis counts of the row resamples ``idx_bn``, each against the null
    draws of ``k_null`` (the point estimate's) taken at the same rows: a resample's repeated
    rows spread its noise eigenvalues, and a null without the repeats is cleared by the noise
    alone. ``pa``: (draws, quantile, null)."""
    def one(idx_n):
        null_k = spectral.resampled_null_quantile(x_nd, k_null, idx_n, *pa)
        return spectral.leading_run(spectral.pca_variances(x_nd[idx_n]) > null_k)
    return jax.lax.map(one, idx_bn).astype(jnp.float32)   # one resample alive at a time


def spectral_estimates(x_nd: jax.Array, key: jax.Array, cfg: ComplexityConfig,
                       ratio_head: int = 0, pa: bool = True) -> dict:
    """Subspace size, components per variance level, participation ratio (with intervals over
    ``n_boot_spectral`` resamples) and parallel analysis (with its interval over ``n_boot_pa``;
    left out with ``pa`` False: it costs ``pa_draws`` more SVDs, and its interval ``pa_draws +
    1`` per resample); with ``ratio_head`` > 0 also the leading explained-variance ratios of the
    same SVD."""
    k_pa, k_boot = jax.random.split(key)
    dim = spectral.threshold_dim(*x_nd.shape, cfg.threshold_mode)  # resamples keep n rows
    stats = SpectralStats(dim, cfg.threshold_factor, tuple(cfg.variance_levels))
    var_k = spectral.pca_variances(x_nd)
    ratio_k = var_k / jnp.sum(var_k)
    values = np.asarray(stats.of_ratios(ratio_k))
    point = [int(c) for c in values[:-1]] + [float(values[-1])]   # counts, then the ratio
    if cfg.n_boot_spectral >= 2:
        lo, hi = bootstrap(stats, x_nd, k_boot, cfg.n_boot_spectral, cfg.level)
        cis = list(zip(np.asarray(lo), np.asarray(hi), strict=True))
    else:
        cis = [None] * len(point)
    out = {"subspace_size": _entry(point[0], cis[0],
                                   threshold=cfg.threshold_factor / dim,
                                   threshold_mode=cfg.threshold_mode,
                                   top_ratio=float(ratio_k[0]))}
    for i, v in enumerate(cfg.variance_levels, start=1):
        out[_level_name(v)] = _entry(point[i], cis[i])
    out["participation_ratio"] = _entry(point[-1], cis[-1])
    if pa:
        pa_cfg = (cfg.pa_draws, cfg.pa_quantile, cfg.pa_null)
        count, _, _ = spectral.parallel_analysis(x_nd, k_pa, *pa_cfg, var_k=var_k)
        ci = None
        if cfg.n_boot_pa >= 2:
            # its own resamples (the key's third stream): the other intervals stay as they were
            idx_bn = resample_indices(jax.random.fold_in(key, 2), x_nd.shape[0], cfg.n_boot_pa)
            ci = percentile_interval(_pa_replicates(pa_cfg, x_nd, k_pa, idx_bn), cfg.level)
        out["parallel_analysis"] = _entry(count, ci, null=cfg.pa_null, draws=cfg.pa_draws)
    if ratio_head > 0:
        out["explained_variance_ratio"] = [float(r) for r in np.asarray(ratio_k[:ratio_head])]
    return out


def local_estimates(x_nd: jax.Array, key: jax.Array, cfg: ComplexityConfig) -> dict:
    """Levina–Bickel MLE and TwoNN, each with a bootstrap interval over per-point statistics."""
    k_sub, k_mle, k_two = jax.random.split(key, 3)
    x_md = _subset(x_nd, k_sub, cfg.local_max_points)
    k = min(cfg.mle_k, x_md.shape[0] - 1)
    # One neighbour search serves both: TwoNN needs only the first two columns.
    dist_mk = local.knn_distances(x_md, k, cfg.knn_chunk)
    dist_mk = dist_mk[local.valid_rows(dist_mk)]
    inv_m = local.mle_inverse_per_point(dist_mk)
    log_mu_m = jnp.log(dist_mk[:, 1]) - jnp.log(dist_mk[:, 0])
    twonn = TwoNNFit(cfg.twonn_discard)
    extra = {"points": int(dist_mk.shape[0])}
    return {
        "mle": _entry(local.mle_from_inverses(inv_m),
                      bootstrap(local.mle_from_inverses, inv_m, k_mle, cfg.n_boot, cfg.level),
                      k=k, **extra),
        "twonn": _entry(twonn(log_mu_m), bootstrap(twonn, log_mu_m, k_two, cfg.n_boot, cfg.level),
                        **extra),
    }


def vaease_estimates(x_nd: jax.Array, key: jax.Array, cfg: ComplexityConfig) -> dict:
    """Mean per-sample VAEase active dimension, its interval, and the whole distribution."""
    k_sub, k_train, k_boot = jax.random.split(key, 3)
    vcfg = cfg.vaease
    counts_n = vaease_active_dims(_subset(x_nd, k_sub, vcfg.max_points), k_train, vcfg)
    counts_f = counts_n.astype(jnp.float32)
    ci = bootstrap(jnp.mean, counts_f, k_boot, cfg.n_boot, cfg.level)
    hist = np.bincount(np.asarray(counts_n), minlength=vcfg.latents + 1)
    return _entry(jnp.mean(counts_f), ci, median=float(jnp.median(counts_f)),
                  hist=[int(c) for c in hist], latents=vcfg.latents)


NORMALIZATIONS = ("none", "l2")


def normalize_rows(x_nd: jax.Array, how: str = "none") -> jax.Array:
    """The samples as they are (``none``) or each scaled to unit L2 norm (``l2``: the authors'
    sweep variant; gradient magnitude grows with the noise level, so unnormalised clouds over
    several timesteps are dominated by the noisiest). All-zero rows stay zero."""
    if how not in NORMALIZATIONS:
        raise UserError(f"unknown normalisation {how!r}: use one of {', '.join(NORMALIZATIONS)}")
    if how == "none":
        return x_nd
    norm_n1 = jnp.linalg.norm(x_nd, axis=1, keepdims=True)
    return x_nd / jnp.maximum(norm_n1, jnp.finfo(jnp.float32).tiny)


def estimator_names(cfg: ComplexityConfig) -> tuple[str, ...]:
    """Names of the estimates `estimate_all` returns (each a ``{"value", "ci", ...}`` dict)."""
    spectral_names = ("subspace_size",) + tuple(_level_name(v) for v in cfg.variance_levels) + (
        "participation_ratio",)
    return spectral_names + ("parallel_analysis", "mle", "twonn") + (
        ("vaease",) if cfg.vaease.enabled else ())


def estimate_one(x_nd: jax.Array, key: jax.Array, cfg: ComplexityConfig, name: str) -> dict:
    """One estimate of `estimate_all` (the same value and interval for the same key), computing
    only its own family: the spectral ones share an SVD, the kNN ones a neighbour search."""
    if name not in estimator_names(cfg):
        raise UserError(f"unknown complexity estimator {name!r}: use one of "
                        f"{', '.join(estimator_names(cfg))}")
    x_nd = jnp.asarray(x_nd, jnp.float32)
    k_spec, k_local, k_vae = jax.random.split(key, 3)
    if name == "vaease":
        return vaease_estimates(x_nd, k_vae, cfg)
    if name in ("mle", "twonn"):
        return local_estimates(x_nd, k_local, cfg)[name]
    return spectral_estimates(x_nd, k_spec, cfg, pa=name == "parallel_analysis")[name]


def estimate_all(x_nd: jax.Array, key: jax.Array, cfg: ComplexityConfig,
                 ratio_head: int = 0) -> dict:
    """Every complexity estimate of one gradient cloud, JSON-ready.

    Args:
      x_nd: ``[n, d]`` samples in rows (gradients w.r.t. one token's embedding, say).
      key: PRNG key; the result is a deterministic function of it (on one platform).
      cfg: estimator settings.
      ratio_head: also return this many leading explained-variance ratios of the spectral SVD
        (a plain list under ``explained_variance_ratio``; absent when 0).

    Returns:
      ``{"n_samples", "dim", "level", "subspace_size", "pca_90", "pca_95", ...,
      "parallel_analysis", "mle", "twonn", "vaease"}``; each estimate is a dict with ``value``
      (float) and ``ci`` (``[lo, hi]`` at ``level``, or None where no interval is computed),
      plus estimator details. ``vaease`` is None when disabled; its ``hist[j]`` counts samples
      with j active dimensions.
    """
    x_nd = jnp.asarray(x_nd, jnp.float32)
    if x_nd.ndim != 2:
        raise UserError(f"complexity needs an [n, d] matrix, got shape {tuple(x_nd.shape)}")
    n, dim = x_nd.shape
    if n < cfg.mle_k + 2 or dim < 2:
        raise UserError(f"complexity needs at least {cfg.mle_k + 2} rows and 2 columns, "
                        f"got {n} x {dim}")
    if not bool(jnp.all(jnp.isfinite(x_nd))):
        raise UserError("complexity input has NaN or infinite values")
    k_spec, k_local, k_vae = jax.random.split(key, 3)
    out: dict[str, Any] = {"n_samples": n, "dim": dim, "level": cfg.level}
    out.update(spectral_estimates(x_nd, k_spec, cfg, ratio_head))
    out.update(local_estimates(x_nd, k_local, cfg))
    out["vaease"] = vaease_estimates(x_nd, k_vae, cfg) if cfg.vaease.enabled else None
    return out
