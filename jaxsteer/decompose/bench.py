"""Benchmarks of the decomposition: compile time and steady-state time, reported separately.

`jaxsteer bench` calls these. Speed is checked here, not by timed tests. The issue's targets, on
one H100: PCA of 4096 x 59,136 fp32 under 2 s; SAE training on 4096 x 2048 to convergence under
30 s. The planted-data generators are shared with the known-answer tests.

Axis letters: n samples, d width, a dictionary atoms, k active atoms / directions.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

# Names, not `from jaxsteer.decompose import pca`: the package re-exports the function `pca`,
# which shadows the submodule of the same name.
from jaxsteer.decompose import sae as sae_mod
from jaxsteer.decompose.directions import unit_rows
from jaxsteer.decompose.pca import _pca_core


def planted_subspace(seed: int, n: int, d: int, k: int, noise: float = 0.05
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Rows drawn from a k-dimensional subspace plus isotropic noise and an offset.

    NumPy on the host, float32: tests and benchmarks then pay no compile for their data.

    Returns:
        (x_nd, basis_kd): data [n, d] and the subspace's orthonormal basis [k, d].
    """
    rng = np.random.default_rng(seed)
    basis_kd = np.linalg.qr(rng.standard_normal((d, k)))[0].T
    scale_k = np.linspace(10.0, 4.0, k)  # distinct variances: a well-defined principal order
    coef_nk = rng.standard_normal((n, k)) * scale_k
    offset_d = 3.0 * rng.standard_normal(d)
    x_nd = coef_nk @ basis_kd + noise * rng.standard_normal((n, d)) + offset_d
    return x_nd.astype(np.float32), basis_kd.astype(np.float32)


def planted_sparse(seed: int, n: int, d: int, atoms: int, active: int, noise: float = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are sparse positive combinations of ``active`` of ``atoms`` unit atoms.

    Positive coefficients because a TopK-ReLU latent codes one sign of its atom only.

    Returns:
        (x_nd, atoms_ad): data [n, d] and the dictionary's unit atoms [a, d], float32.
    """
    rng = np.random.default_rng(seed)
    atoms_ad = rng.standard_normal((atoms, d))
    atoms_ad /= np.linalg.norm(atoms_ad, axis=-1, keepdims=True)
    # `active` distinct atoms per row: the first of a random ordering.
    idx_nk = np.argsort(rng.random((n, atoms)), axis=1)[:, :active]
    codes_na = np.zeros((n, atoms))
    np.put_along_axis(codes_na, idx_nk, rng.uniform(0.5, 1.5, (n, active)), axis=1)
    x_nd = codes_na @ atoms_ad
    x_nd += noise * rng.standard_normal((n, d))
    return x_nd.astype(np.float32), atoms_ad.astype(np.float32)


def _timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0, out


def bench_pca(n: int = 4096, m: int = 59136, k: int = 16, method: str = "auto",
              repeats: int = 3, seed: int = 0) -> dict[str, float | int | str]:
    """Times PCA of an n x m float32 matrix (planted 64-dim subspace plus noise).

    Returns:
        dict with compile_s (lower + compile of the jitted PCA), steady_s (median of
        ``repeats`` calls of the compiled function), and the sizes and solver.
    """
    x_nm = jax.device_put(planted_subspace(seed, n, m, min(64, n, m))[0])
    solver = ("cov" if m <= 4096 else "randomized") if method == "auto" else method
    static = {"k": k, "method": solver, "centre": True, "oversample": 10, "iters": 4}
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    compiled = _pca_core.lower(x_nm, key, **static).compile()
    compile_s = time.perf_counter() - t0
    first_s, _ = _timed(compiled, x_nm, key)
    steady = [_timed(compiled, x_nm, key)[0] for _ in range(repeats)]
    return {"n": n, "m": m, "k": k, "solver": solver, "compile_s": compile_s,
            "first_call_s": first_s, "steady_s": statistics.median(steady),
            "device": str(jax.devices()[0].device_kind)}


def bench_sae(n: int = 4096, d: int = 2048, cfg: sae_mod.SAEConfig | None = None,
              repeats: int = 20, seed: int = 0) -> dict[str, float | int]:
    """Times the SAE train step and a whole training run on planted sparse data [n, d].

    Returns:
        dict with step_compile_s (AOT compile of the step), step_s (median steady-state
        step), first_epoch_cold_s (a one-epoch `train_sae` with every compile in it), train_s
        (a whole `train_sae` once compiled, early stopping as configured), epochs run, and the
        final fvu / l0 / dead_frac / number of directions.
    """
    cfg = cfg or sae_mod.SAEConfig()
    x_nd = jax.block_until_ready(unit_rows(jax.device_put(
        planted_sparse(seed, n, d, d, min(cfg.k, d))[0])))
    batch = min(cfg.batch_size, n)
    state = sae_mod.init_state(cfg, x_nd, (n // batch) * cfg.epochs)
    batch_bd = x_nd[:batch]
    t0 = time.perf_counter()
    step = sae_mod.sae_step.lower(state, batch_bd).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, m = step(state, batch_bd)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    # A one-epoch run compiles everything train_sae uses (the AOT step above is not cached).
    t0 = time.perf_counter()
    sae_mod.train_sae(x_nd, cfg, max_epochs=1)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds, final = sae_mod.train_sae(x_nd, cfg)
    train_s = time.perf_counter() - t0
    metrics = ds.metadata["sae_metrics"]
    return {"n": n, "d": d, "step_compile_s": compile_s, "step_s": statistics.median(times),
            "first_epoch_cold_s": warmup_s, "train_s": train_s, "epochs": len(ds.metadata["sae_history"]),
            "steps": int(final.step), "fvu": metrics["fvu"], "l0": metrics["l0"],
            "dead_frac": metrics["dead_frac"], "directions": ds.k,
            "device": str(jax.devices()[0].device_kind)}
