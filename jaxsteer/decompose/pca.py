"""PCA of a gradient matrix in `jnp`: exact (covariance eigh, or SVD) or randomized.

The matrix may be sharded by rows over a device mesh: every reduction over rows (the mean, the
covariance ``X^T X``, ``X^T Y`` in subspace iteration, the small Gram matrix ``B^T B``) becomes
an all-reduce under jit, and the small eigen-problems stay replicated, so no `shard_map` is
needed and the answer matches one device.

Solvers (``method``):
  cov         eigh of the [d, d] covariance: exact, every component; cost O(n d^2 + d^3).
  svd         SVD of the centred matrix: exact, but gathers a sharded matrix on one device.
  randomized  subspace iteration on ``X^T X`` with a [d, k + oversample] block, then
              Rayleigh-Ritz; only M-side QRs, so it scales to d = 59,136 (77 SD1.5 tokens).
  auto        cov when d <= exact_max_dim, else randomized.

Axis letters: n samples, d columns, k directions kept, l = k + oversample block width.
"""

from __future__ import annotations

import functools
import io
import os
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer.decompose.directions import (
    SIGNIFICANCE_FACTOR,
    DirectionSet,
    as_float,
    fix_signs,
    unit_rows,
)
from jaxsteer.errors import UserError
from jaxsteer.records import atomic_write_bytes

Method = Literal["auto", "cov", "svd", "randomized"]
# Matmuls at full float32: TPUs (bf16 passes) and GPUs (TF32) default to less, which would blur
# the small end of the spectrum that the significance rule counts.
_HI = jax.lax.Precision.HIGHEST


def pca(grads_nd: jax.Array, k: int = 16, *, centre: bool = True, normalise: bool = False,
        method: Method = "auto", oversample: int = 10, iters: int = 4,
        exact_max_dim: int = 4096, seed: int = 0) -> DirectionSet:
    """Principal directions of a gradient matrix.

    Args:
        grads_nd: [n, d] gradients, one per row; may be sharded by rows over a mesh.
        k: directions to keep (principal axes, largest singular value first).
        centre: subtract the mean row first (the authors' PCA is centred).
        normalise: unit-normalise every row first (the authors' "L2-normalised" variant).
        method: 'auto', 'cov', 'svd' or 'randomized' (module docstring).
        oversample: extra block columns of the randomized solver (accuracy of the k-th one).
        iters: subspace iterations of the randomized solver (each squares the spectral gap).
        exact_max_dim: 'auto' uses the exact covariance solver up to this d.
        seed: seed of the randomized solver's starting block.

    Returns:
        A DirectionSet with ``directions`` [k, d] (unit rows), ``mean`` [d], and
        ``singular_values`` / ``explained_variance_ratio`` [r]: r = min(n, d) for the exact
        solvers (the whole spectrum, so the significance count is exact) and r = k for
        'randomized' (the count is then capped at k).
    """
    n, d = _check(grads_nd, k, method)
    if method == "auto":
        method = "cov" if d <= exact_max_dim else "randomized"
    x_nd = as_float(grads_nd)
    if normalise:
        x_nd = unit_rows(x_nd)
    dirs_kd, mean_d, s_r, ratio_r = _pca_core(
        x_nd, jax.random.key(seed), k=k, method=method, centre=centre,
        oversample=oversample, iters=iters)
    meta = {"method": "pca", "solver": method, "n": n, "dim": d, "k": k, "centre": centre,
            "normalise": normalise, "seed": seed,
            "significance_threshold": SIGNIFICANCE_FACTOR / d}
    return DirectionSet(directions=dirs_kd, mean=mean_d, singular_values=s_r,
                        explained_variance_ratio=ratio_r, metadata=meta)


def _check(grads_nd: jax.Array, k: int, method: str) -> tuple[int, int]:
    """Validates shapes and arguments with UserErrors before anything compiles."""
    if getattr(grads_nd, "ndim", None) != 2:
        raise UserError(f"PCA needs an [n, d] matrix, got shape {getattr(grads_nd, 'shape', '?')}")
    n, d = (int(s) for s in grads_nd.shape)
    if method not in ("auto", "cov", "svd", "randomized"):
        raise UserError(f"unknown PCA method {method!r}: use auto, cov, svd or randomized")
    if n < 2:
        raise UserError(f"PCA needs at least 2 gradients, got {n}")
    if not 1 <= k <= min(n, d):
        raise UserError(f"k must be in [1, min(n, d) = {min(n, d)}], got {k}")
    return n, d


@functools.partial(jax.jit, static_argnames=("k", "method", "centre", "oversample", "iters"))
def _pca_core(x_nd: jax.Array, key: jax.Array, *, k: int, method: str, centre: bool,
              oversample: int, iters: int) -> tuple[jax.Array, ...]:
    """Jitted PCA: (directions [k, d], mean [d], singular values [r], ratios [r])."""
    n, d = x_nd.shape
    mean_d = jnp.mean(x_nd, axis=0) if centre else jnp.zeros((d,), x_nd.dtype)
    # Centre explicitly (not X^T X - n m m^T): the subtraction would cancel catastrophically in
    # float32 when the mean gradient is large next to the spread, which it often is.
    xc_nd = x_nd - mean_d[None, :]
    total = jnp.sum(xc_nd * xc_nd)
    if method == "cov":
        cov_dd = jnp.matmul(xc_nd.T, xc_nd, precision=_HI)
        evals_d, evecs_dd = jnp.linalg.eigh(cov_dd)  # ascending
        r = min(n, d)
        s_r = jnp.sqrt(jnp.maximum(evals_d[::-1][:r], 0.0))
        dirs_rd = evecs_dd[:, ::-1][:, :r].T
    elif method == "svd":
        _, s_r, dirs_rd = jnp.linalg.svd(xc_nd, full_matrices=False)
    else:
        s_r, dirs_rd = _randomized(xc_nd, key, min(k + oversample, n, d), iters)
        s_r, dirs_rd = s_r[:k], dirs_rd[:k]
    # A zero matrix (total = 0) has no direction of variance: ratios 0, not NaN.
    ratio_r = jnp.where(total > 0, s_r**2 / jnp.where(total > 0, total, 1.0), 0.0)
    return fix_signs(dirs_rd[:k]), mean_d, s_r, ratio_r


def _randomized(xc_nd: jax.Array, key: jax.Array, width: int, iters: int
                ) -> tuple[jax.Array, jax.Array]:
    """Top singular values [l] and right singular vectors [l, d] (l = width), subspace iteration.

    Orthonormalises only the replicated [d, l] block (never the row-sharded [n, l] one), so
    each step is two matmuls with one all-reduce, and the final Rayleigh-Ritz step needs only
    the [l, l] Gram matrix of ``X Q``.
    """
    d = xc_nd.shape[1]
    q_dl, _ = jnp.linalg.qr(jax.random.normal(key, (d, width), xc_nd.dtype))

    def body(_, q_dl):
        y_nl = jnp.matmul(xc_nd, q_dl, precision=_HI)
        z_dl = jnp.matmul(xc_nd.T, y_nl, precision=_HI)
        return jnp.linalg.qr(z_dl)[0]

    q_dl = jax.lax.fori_loop(0, iters, body, q_dl)
    b_nl = jnp.matmul(xc_nd, q_dl, precision=_HI)
    evals_l, w_ll = jnp.linalg.eigh(jnp.matmul(b_nl.T, b_nl, precision=_HI))  # ascending
    s_l = jnp.sqrt(jnp.maximum(evals_l[::-1], 0.0))
    dirs_ld = jnp.matmul(q_dl, w_ll[:, ::-1], precision=_HI).T
    # Re-normalise: Q W is orthonormal in exact arithmetic only.
    dirs_ld = dirs_ld / jnp.linalg.norm(dirs_ld, axis=-1, keepdims=True)
    return s_l, dirs_ld


def spectrum_png(ratios_r: jax.Array | np.ndarray, dim: int, *, max_bars: int = 64,
                 title: str = "") -> bytes:
    """A bar plot of explained-variance ratios with the 2.5 / d significance line, as PNG bytes.

    Uses matplotlib's object API with the Agg canvas (no pyplot), so it changes no global
    backend state and works headless.

    Args:
        ratios_r: [r] explained-variance ratios, largest first.
        dim: d, for the significance threshold 2.5 / d.
        max_bars: plot at most this many leading components.
        title: figure title.

    Returns:
        The PNG file's bytes (write them with `jaxsteer.records.atomic_write_bytes`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ratios = np.asarray(ratios_r, dtype=np.float64)
    threshold = SIGNIFICANCE_FACTOR / dim
    # The significant bars and a few after them, not 64 slivers of which 5 are visible.
    ratios = ratios[: min(max_bars, max(16, 2 * int(np.sum(ratios > threshold)) + 4))]
    fig = Figure(figsize=(8, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    idx = np.arange(len(ratios))  # 0-based, as --indices, the report and the terminal
    colours = np.where(ratios > threshold, "tab:blue", "tab:gray")
    ax.bar(idx, ratios, color=colours)
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1,
               label=f"2.5 / D = {threshold:.2e}")
    ax.set_xlabel("direction (component, from 0)")
    ax.set_ylabel("explained-variance ratio")
    ax.set_title(title or f"spectrum ({int(np.sum(ratios > threshold))} significant shown)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_spectrum_png(path: str | os.PathLike, ratios_r: jax.Array | np.ndarray, dim: int,
                       **kwargs) -> None:
    """Writes `spectrum_png` to ``path`` atomically."""
    atomic_write_bytes(path, spectrum_png(ratios_r, dim, **kwargs))
