"""`jaxsteer decompose`: gradient store -> DirectionSet checkpoint, spectrum plot and a table.

    jaxsteer decompose runs/monster --method pca --k 16
    jaxsteer decompose runs/monster --method sae --sae.epochs 40

The gradients [n, r, d] of a finished `jaxsteer collect` run are flattened to [n, r * d]
(one row per pair; r differentiated token rows side by side) and decomposed. The output folder
is one checkpoint (load it with `jaxsteer.checkpoint.load`) that also holds the plot.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jaxsteer import checkpoint, records
from jaxsteer.config import opt, to_dict
from jaxsteer.decompose.directions import SIGNIFICANCE_FACTOR, DirectionSet
from jaxsteer.decompose.pca import pca, spectrum_png
from jaxsteer.decompose.sae import SAEConfig, train_sae
from jaxsteer.errors import UserError
from jaxsteer.store import read_gradients

# Store manifest fields copied into the DirectionSet metadata (what `load(expect=...)` checks).
_PROVENANCE = ("model", "revision", "prompt", "token", "token_rows", "embed_dim", "feature",
               "steps", "timestep", "guidance", "seed", "pool", "versions")


@dataclasses.dataclass(frozen=True)
class DecomposeRun:
    """Decompose the gradients of one collect run into steering directions."""

    run_dir: Path = opt(help="gradient store folder written by `jaxsteer collect`",
                        positional=True)
    method: Literal["pca", "sae"] = opt("pca", "pca (SVD) or sae (TopK sparse autoencoder)",
                                        choices=("pca", "sae"))
    k: int | None = opt(None, "PCA: directions kept [16]; SAE: active latents, sets --sae.k "
                              "[32, authors]")
    dict_size: int | None = opt(None, "SAE latents, sets --sae.dict-size [d: expansion 1, "
                                      "authors]")
    out: Path | None = opt(None, "output checkpoint folder [<run_dir>/directions_<method>]")
    centre: bool = opt(True, "PCA: subtract the mean gradient first [yes, authors]")
    normalise: bool | None = opt(None, "unit-normalise every gradient first [PCA: no; SAE: "
                                       "--sae.normalise, yes (authors)]")
    solver: Literal["auto", "cov", "svd", "randomized"] = opt(
        "auto", "PCA solver; auto = exact covariance up to d = 4096, else randomized",
        choices=("auto", "cov", "svd", "randomized"))
    seed: int = opt(0, "seed of the randomized PCA solver (SAE: --sae.seed)")
    rows: int = opt(10, "spectrum rows printed in the table")
    overwrite: bool = opt(False, "replace an existing output checkpoint")
    sae: SAEConfig = opt(default_factory=SAEConfig, help="sparse-autoencoder settings")

    def __post_init__(self) -> None:
        for name in ("k", "dict_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.rows < 1:
            raise UserError(f"--rows must be >= 1, got {self.rows}")

    def sae_config(self) -> SAEConfig:
        """The SAE config with the top-level shortcuts (--k, --dict-size, --normalise) applied."""
        updates = {"k": self.k, "dict_size": self.dict_size, "normalise": self.normalise}
        return dataclasses.replace(self.sae, **{f: v for f, v in updates.items() if v is not None})


def _provenance(manifest: dict[str, Any], cfg: DecomposeRun) -> dict[str, Any]:
    meta = {key: manifest[key] for key in _PROVENANCE if key in manifest}
    return meta | {"run_dir": str(cfg.run_dir), "config": to_dict(cfg)}


def _load_matrix(run_dir: Path) -> tuple[np.ndarray, dict[str, Any], int]:
    """The store's gradients as [n, r * d] float32, the manifest, and r."""
    grads, manifest = read_gradients(run_dir)
    grads = np.asarray(grads, np.float32)
    if grads.ndim == 2:
        grads = grads[:, None, :]
    if grads.ndim != 3 or grads.shape[0] < 2:
        raise UserError(f"{run_dir}: expected gradients [n >= 2, r, d], got {grads.shape}")
    if not np.all(np.isfinite(grads)):
        raise UserError(f"{run_dir}: the gradients contain NaN or inf; recollect them")
    n, r, d = grads.shape
    return grads.reshape(n, r * d), manifest, r


def _pca_table(ds: DirectionSet, rows: int) -> list[str]:
    ratios = np.asarray(ds.explained_variance_ratio)
    sv = np.asarray(ds.singular_values)
    threshold = SIGNIFICANCE_FACTOR / ds.dim
    lines = [f"{'#':>4} {'singular value':>15} {'EV ratio':>10} {'cumulative':>11}"]
    for i in range(min(rows, len(ratios))):
        lines.append(f"{i:>4} {sv[i]:>15.5g} {ratios[i]:>10.4f} "
                     f"{ratios[: i + 1].sum():>11.4f}")
    count = ds.significant_count()
    capped = " (at least: only these were computed)" if count == len(ratios) else ""
    lines.append(f"significant (EV ratio > 2.5/D = {threshold:.3g}): {count} of "
                 f"{len(ratios)} computed{capped}")
    return lines


def _sae_table(ds: DirectionSet) -> list[str]:
    m = ds.metadata["sae_metrics"]
    lo, hi = ds.metadata["config"]["sae"]["log10_density_range"]
    return [(f"FVU {m['fvu']:.4f}   explained variance {m['explained_variance']:.4f}   "
             f"L0 {m['l0']:.2f}   dead latents {100 * m['dead_frac']:.1f}%"),
            (f"directions: {ds.k} of {ds.metadata['latents']} latents with log10 firing "
             f"density in ({lo:g}, {hi:g}); {len(ds.metadata['sae_history'])} epochs")]


def run(cfg: DecomposeRun) -> dict[str, Any]:
    """Runs the decomposition, prints a table, writes the checkpoint; returns a summary dict."""
    out = Path(cfg.out if cfg.out is not None else cfg.run_dir / f"directions_{cfg.method}")
    records.check_out(out)
    if out.exists() and not cfg.overwrite:  # fail before the work, not after
        raise UserError(f"{out} exists: choose another --out or pass --overwrite")
    x_nd, manifest, r = _load_matrix(cfg.run_dir)
    n, d = x_nd.shape
    print(f"decompose {cfg.method}: {n} gradients x {d} ({r} token row(s) of "
          f"{d // r}) from {cfg.run_dir}")
    t0 = time.perf_counter()
    state = None
    if cfg.method == "pca":
        k = cfg.k if cfg.k is not None else 16
        if k > min(n, d):
            raise UserError(f"--k {k} exceeds min(n, d) = {min(n, d)} for this store")
        normalise = bool(cfg.normalise)  # None -> the authors' raw gradients
        ds = pca(x_nd, k=k, centre=cfg.centre, normalise=normalise, method=cfg.solver,
                 seed=cfg.seed)
        lines = _pca_table(ds, cfg.rows)
        png_name, png = "spectrum.png", spectrum_png(ds.explained_variance_ratio, d)
    else:
        ds, state = train_sae(x_nd, cfg.sae_config())
        ds = ds.replace_metadata(config=to_dict(cfg))
        lines = _sae_table(ds)
        png_name, png = "density.png", _density_png(ds)
    seconds = time.perf_counter() - t0
    ds = ds.replace_metadata(**_provenance(manifest, cfg), seconds=seconds)
    path = checkpoint.save(ds, out, train_state=state, extras={png_name: png},
                           overwrite=cfg.overwrite)
    lines.append(f"wrote {path} ({png_name} inside) in {seconds:.1f} s")
    print("\n".join(lines))
    summary = {"method": cfg.method, "n": n, "dim": d, "token_rows": r, "k": ds.k,
               "out": str(path), "png": str(path / png_name), "seconds": seconds}
    if cfg.method == "pca":
        ratios = np.asarray(ds.explained_variance_ratio)
        summary |= {"significant": ds.significant_count(), "computed": len(ratios),
                    "ev_ratio": ratios[: cfg.rows].round(6).tolist()}
    else:
        summary |= ds.metadata["sae_metrics"]
    return summary


def _density_png(ds: DirectionSet) -> bytes:
    """Bar plot of the SAE directions' firing densities (log scale), as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    density = np.asarray(ds.density) if ds.density is not None else np.zeros(0)
    ax.bar(np.arange(1, len(density) + 1), density, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("SAE direction")
    ax.set_ylabel("firing density")
    ax.set_title(f"{ds.k} SAE directions")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
