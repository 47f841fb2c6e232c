"""Writes the scikit-dimension fixtures that tests/complexity/test_skdim_crosscheck.py checks.

    pip install --target /tmp/skdsite scikit-dimension     # its own numpy, scipy, sklearn
    PYTHONPATH=/tmp/skdsite python3 scripts/make_skdim_fixtures.py

Planted datasets (a linear subspace, a sphere, a Swiss roll, a decaying spectrum), each saved
with scikit-dimension's estimates of it: Levina-Bickel MLE combined MacKay-Ghahramani style
(``MLE().fit(comb="mle")``) at several k, TwoNN's line fit (10% discarded), the PCA variance
rule (``lPCA(ver="ratio")``), the participation ratio and Horn's parallel analysis
(``lPCA(ver="parallel")``). The test runs jaxsteer's estimators on the same arrays, so a
difference in a definition (neighbour count, the k - 1 factor, the discarded tail, the
cumulative-variance rule) fails there without scikit-dimension installed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "skdim"
KS = (5, 10, 20)
LEVELS = (0.9, 0.95)


def _embed(rng: np.random.Generator, z_nm: np.ndarray, d: int, noise: float) -> np.ndarray:
    """``z`` rotated into ``d`` dimensions by a random orthonormal map, plus isotropic noise."""
    q_dm = np.linalg.qr(rng.normal(size=(d, z_nm.shape[1])))[0]
    return z_nm @ q_dm.T + noise * rng.normal(size=(len(z_nm), d))


def datasets(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lin = rng.normal(size=(600, 3)) * np.array([3.0, 2.0, 1.5])
    sphere = rng.normal(size=(800, 5))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=1000))
    roll = np.stack([t * np.cos(t), 20 * rng.uniform(size=1000), t * np.sin(t)], axis=1)
    decay = rng.normal(size=(500, 20)) * (0.7 ** np.arange(20))
    return {"linear3_in12": _embed(rng, lin, 12, 0.01),
            "sphere4_in10": _embed(rng, sphere, 10, 0.001),
            "swissroll2_in8": _embed(rng, roll, 8, 0.0),
            "decay_in20": decay}


def estimates(x_nd: np.ndarray) -> dict:
    import skdim
    out = {f"mle_k{k}": float(skdim.id.MLE().fit(x_nd, n_neighbors=k, comb="mle").dimension_)
           for k in KS}
    out["twonn"] = float(skdim.id.TwoNN(discard_fraction=0.1).fit(x_nd).dimension_)
    for level in LEVELS:
        out[f"pca_{round(level * 100)}"] = int(skdim.id.lPCA(ver="ratio", alphaRatio=level)
                                               .fit(x_nd).dimension_)
    out["participation_ratio"] = float(skdim.id.lPCA(ver="participation_ratio")
                                       .fit(x_nd).dimension_)
    out["parallel_analysis"] = int(skdim.id.lPCA(ver="parallel", n_permutations=100,
                                                 quantile=0.95, random_state=0)
                                   .fit(x_nd).dimension_)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    import skdim
    args.out.mkdir(parents=True, exist_ok=True)
    data = datasets()
    np.savez_compressed(args.out / "planted.npz", **{k: v.astype(np.float32)
                                                     for k, v in data.items()})
    # the estimates are of the float32 arrays the test loads
    ref = {k: estimates(v.astype(np.float32).astype(np.float64)) for k, v in data.items()}
    (args.out / "skdim.json").write_text(json.dumps(
        {"skdim": getattr(skdim, "__version__", "unknown"), "estimates": ref}, indent=1) + "\n")
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main()
