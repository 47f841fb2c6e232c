"""How the complexity estimate settles with the number of gradients, and the tuning variants.

**Convergence**, after the authors' subspace sweep (diffusion_memorization `subspace_sweep.py`,
ELROND appendix B): for a prompt with ``N_ref`` gradients, the significant PCA subspace of the
first ``n`` rows (explained-variance ratio above the configured threshold) is compared with that
of all ``N_ref`` rows, as the squared Frobenius overlap ``||V_ref V_n^T||_F^2`` of the two
orthonormal bases over the reference's dimension ("spanned": how much of the reference the
subset recovers) and ``1 -`` that over the subset's own dimension ("spurious": how much of the
subset is absent from the reference). Prefixes, not random subsets: the benchmark's pair j sits
at timestep stratum j mod T, so every prefix keeps the strata balanced, as the authors'
stratified subsets do. As in their appendix the reference contains the subsets (no hold-out), so
the last point is 1 / 0 by construction. Beside it, the headline estimator with its bootstrap
interval at each n.

**Variants**: every spectral and kNN estimator (no intervals) under each normalisation, both
threshold modes and each row view, on one prompt's gradients, so one run ranks all those
choices on the same data (`stats.variant_table`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.complexity import ComplexityConfig, estimate_one, normalize_rows, spectral
from jaxsteer.complexity.estimate import NORMALIZATIONS, local_estimates, spectral_estimates
from jaxsteer.decompose.pca import pca
from jaxsteer.shapes.captions import free_count

# Null draws of parallel analysis in the variants table (each is one more SVD per variant).
VARIANT_PA_DRAWS = 5


def round_robin(prompts: tuple[str, ...], m: int,
                count: Callable[[str], int] = free_count) -> tuple[str, ...]:
    """The first ``m`` prompts taking one of each free-factor count in turn (list order within a
    count; ``count``: the world's free count, shapes by default): the convergence prompts span
    the counts before any count gets a second."""
    by_count: dict[int, list[str]] = {}
    for p in prompts:
        by_count.setdefault(count(p), []).append(p)
    rounds = max(map(len, by_count.values()), default=0)
    dealt = [g[j] for j in range(rounds) for _, g in sorted(by_count.items()) if j < len(g)]
    return tuple(dealt[:m])


def significant_basis(x_nd: jax.Array, cfg: ComplexityConfig) -> np.ndarray:
    """Orthonormal rows [k, d] of the PCA directions above the subspace-size threshold."""
    n, d = x_nd.shape
    # the whole spectrum from decompose.pca's exact solvers: the d x d covariance's eigh where
    # n >= d (a fraction of a tall SVD's cost), the SVD otherwise
    dirs = pca(x_nd, min(n, d), method="cov" if n >= d else "svd")
    vt_kd, ratio_k = dirs.directions, dirs.explained_variance_ratio
    k = int(spectral.count_above_threshold(ratio_k, spectral.threshold_dim(n, d,
                                                                          cfg.threshold_mode),
                                           cfg.threshold_factor))
    return np.asarray(vt_kd[:k], np.float64)


def overlap(v_ref: np.ndarray, v_sub: np.ndarray) -> tuple[float | None, float | None]:
    """(spanned, spurious) of two orthonormal row bases (module docstring); None where a basis
    is empty."""
    if len(v_ref) == 0 or len(v_sub) == 0:
        return None, None
    f = float(np.sum(np.square(v_ref @ v_sub.T)))
    # clipped: f <= min(k_ref, k_sub) holds exactly, float rounding can cross it by 1e-7
    return min(f / len(v_ref), 1.0), max(1.0 - f / len(v_sub), 0.0)


def convergence(x_nd: jax.Array, ns: tuple[int, ...], key: jax.Array, cfg: ComplexityConfig,
                headline: str) -> dict:
    """The convergence table of one prompt's ``[N_ref, d]`` gradients at each n of ``ns``
    (those below N_ref) and at N_ref."""
    n_ref = x_nd.shape[0]
    v_ref = significant_basis(x_nd, cfg)
    points = []
    for n in sorted({m for m in ns if m < n_ref} | {n_ref}):
        v_n = significant_basis(x_nd[:n], cfg)
        spanned, spurious = overlap(v_ref, v_n)
        est = estimate_one(x_nd[:n], jax.random.fold_in(key, n), cfg, headline)
        points.append({"n": n, "k": len(v_n), "spanned": spanned, "spurious": spurious,
                       "estimate": {"value": est["value"], "ci": est["ci"]}})
    return {"reference_n": n_ref, "k_reference": len(v_ref), "estimator": headline,
            "points": points}


def variant_values(views: dict[str, np.ndarray], key: jax.Array,
                   cfg: ComplexityConfig) -> dict[str, dict[str, float]]:
    """{"VIEW/NORM": {estimator: value}} for each row view ``[n, r, d]`` and normalisation:
    subspace size under both threshold modes, the variance-level counts, parallel analysis
    (`VARIANT_PA_DRAWS` draws) and the kNN estimators, all point values."""
    cheap = dataclasses.replace(cfg, n_boot_spectral=0, n_boot_pa=0, pa_draws=min(cfg.pa_draws,
                                                                     VARIANT_PA_DRAWS))
    out: dict[str, dict[str, float]] = {}
    for view, g_nrd in views.items():
        for norm in NORMALIZATIONS:
            x_nd = normalize_rows(jnp.asarray(g_nrd.reshape(len(g_nrd), -1), jnp.float32), norm)
            k_spec, k_local = jax.random.split(key)
            est = {**spectral_estimates(x_nd, k_spec, cheap), **local_estimates(x_nd, k_local,
                                                                                 cheap)}
            values = {name: e["value"] for name, e in est.items() if isinstance(e, dict)}
            ratio_k = spectral.explained_variance_ratio(x_nd)
            values["subspace_size_n_dependent"] = float(spectral.count_above_threshold(
                ratio_k, spectral.threshold_dim(*x_nd.shape, "n_dependent"),
                cfg.threshold_factor))
            values["subspace_size_fixed"] = float(spectral.count_above_threshold(
                ratio_k, x_nd.shape[1], cfg.threshold_factor))
            del values["subspace_size"]   # one of the two above, under cfg.threshold_mode
            out[f"{view}/{norm}"] = values
    return out
