"""The ground-truth benchmark's statistics and tables: pure numpy, unit-tested on planted data."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from jaxsteer.benchmarks import text_table
from jaxsteer.benchmarks.groundtruth.config import CONTINUOUS, TARGETS


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when undefined (fewer than 3
    samples, or either side constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    return float(np.sum(ra * rb) / np.sqrt(np.sum(ra**2) * np.sum(rb**2)))


def factor_change(factor: str, values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Signed change of a factor from the reference; hue wraps to [-180, 180)."""
    d = np.asarray(values, np.float64) - np.asarray(reference, np.float64)
    return np.mod(d + 180.0, 360.0) - 180.0 if factor == "hue" else d


def spread(factor: str, values: np.ndarray) -> float | None:
    """Spread of a factor's values: std (x, y, size), circular std in degrees (hue), entropy of
    the type histogram over log 3 (type); None for fewer than 2 values."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return None
    if factor == "type":
        p = np.bincount(v.astype(int), minlength=3)[:3] / len(v)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / np.log(3))
    if factor == "hue":
        r = np.abs(np.mean(np.exp(1j * np.deg2rad(v))))
        return float(np.rad2deg(np.sqrt(-2.0 * np.log(max(r, 1e-12)))))
    return float(np.std(v))


def recovery_scores(factors: dict[str, np.ndarray], usable: np.ndarray, strength_n: np.ndarray,
                    seed_n: np.ndarray, free: tuple[str, ...]) -> dict[str, dict]:
    """Scores of ONE direction from its steered samples and their seeds' references.

    Args:
      factors: probe readings [n] per factor of the direction's samples, references included
        (strength 0, one per seed).
      usable: [n] bool, the samples the probe is trusted on.
      strength_n, seed_n: [n] strength and seed of each sample.
      free: the caption's free factors.

    Returns:
      {factor: {"score", "rho" (signed mean over seeds; continuous factors), "usable" (share)}};
      type's score is the share of usable steered samples whose type differs from the
      reference's.
    """
    ref_idx = {int(s): i for i, (s, a) in enumerate(zip(seed_n, strength_n, strict=True)) if a == 0}
    ref = np.array([ref_idx.get(int(s), -1) for s in seed_n])
    ok = usable & (ref >= 0) & usable[np.maximum(ref, 0)]
    out = {}
    for f in free:
        vals, refs = factors[f][ok], factors[f][ref[ok]]
        if f == "type":
            steered = strength_n[ok] != 0
            changed = float(np.mean(vals[steered] != refs[steered])) if steered.any() else 0.0
            out[f] = {"score": changed, "usable": float(ok.mean())}
            continue
        change, s_ok, seeds_ok = factor_change(f, vals, refs), strength_n[ok], seed_n[ok]
        rhos = [spearman(s_ok[seeds_ok == s], change[seeds_ok == s]) or 0.0
                for s in np.unique(seeds_ok) if np.sum(seeds_ok == s) >= 3]
        rho = float(np.mean(rhos)) if rhos else None
        out[f] = {"score": abs(rho or 0.0), "rho": rho, "usable": float(ok.mean())}
    return out


def best_over_directions(per_dir: list[dict[str, dict]], free: tuple[str, ...] = ()
                         ) -> dict[str, dict]:
    """For each factor the best-scoring direction's entry, with its index as "direction"; a
    factor of ``free`` that no direction scored (no directions) gets score 0."""
    best: dict[str, dict] = {f: {"score": 0.0, "usable": 0.0, "direction": None} for f in free}
    for j, scores in enumerate(per_dir):
        for f, s in scores.items():
            if f not in best or best[f]["direction"] is None or s["score"] > best[f]["score"]:
                best[f] = {**s, "direction": j}
    return best


def gmean(values: list[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def complexity_table(records: list[dict]) -> dict[str, float | None]:
    names = [k for k, v in records[0]["estimates"].items() if isinstance(v, dict) and "value" in v]
    n_free = [r["n_free"] for r in records]
    return {k: spearman([r["estimates"][k]["value"] for r in records], n_free) for k in names}


def summary(result: dict) -> dict:
    rec = result["recovery"]
    out: dict[str, Any] = {}
    for method in ("pca", "sae"):
        out[f"recovery_{method}"] = mean([r[method][f]["score"] for r in rec.values()
                                           for f in r["free"] if f in CONTINUOUS])
    rhos = result["complexity"]["spearman"]
    out["complexity_spearman"] = {k: None if v is None else round(v, 3) for k, v in rhos.items()}
    div = result["diversity"].values()
    for method in ("pca", "sae"):
        ratios = [d[f"turbo+{method}"]["ratio_vs_turbo"] for d in div
                  if f"turbo+{method}" in d and d[f"turbo+{method}"]["ratio_vs_turbo"]]
        out[f"spread_ratio_{method}"] = gmean(ratios)
        out[f"fidelity_{method}"] = mean([d[f"turbo+{method}"]["fidelity"] for d in div
                                           if f"turbo+{method}" in d
                                           and d[f"turbo+{method}"]["fidelity"] is not None])
    out["collapse_ratio"] = gmean([d["base"]["ratio_vs_turbo"] for d in div
                                    if d["base"]["ratio_vs_turbo"]])
    return out


def _f(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def format_tables(result: dict) -> str:
    """The three sections as plain-text tables, with the targets next to the numbers."""
    s, t = result["summary"], TARGETS
    parts = [(f"factor recovery: best |mean per-seed Spearman(strength, change)| over the top "
              f"{result['config']['k']} directions (type: share changed, not in the mean)")]
    rows = []
    for prompt, r in result["recovery"].items():
        for f in r["free"]:
            rows.append([prompt, f, _f(r["pca"][f]["score"]), _f(r["sae"][f]["score"]),
                         _f(r["pca"][f]["usable"]), _f(r["sae"][f]["usable"])])
    parts.append(text_table(["prompt", "factor", "PCA", "SAE", "usable PCA", "usable SAE"], rows))
    parts.append(f"mean (continuous factors): PCA {_f(s['recovery_pca'])}, SAE "
                 f"{_f(s['recovery_sae'])}   target >= {t['recovery']}")
    parts.append("\ncomplexity: Spearman(estimate, free factors) over "
                 f"{len(result['complexity']['prompts'])} prompts")
    recs = result["complexity"]["prompts"]
    names = list(result["complexity"]["spearman"])
    rows = [[r["prompt"], str(r["n_free"])] + [_f(r["estimates"][k]["value"], 1) for k in names]
            for r in recs]
    rows.append(["Spearman", ""] + [_f(result["complexity"]["spearman"][k]) for k in names])
    parts.append(text_table(["prompt", "free"] + names, rows))
    parts.append(f"target >= {t['complexity']}")
    parts.append("\ndiversity: spread of free factors (std; hue circular std in degrees; type "
                 "entropy / log 3), fidelity = share obeying the caption's fixed factors")
    rows = []
    for prompt, d in result["diversity"].items():
        for name in (n for n in d if n != "free"):
            e = d[name]
            rows.append([prompt, name, " ".join(f"{f}={_f(e['spread'][f], 3)}" for f in d["free"]),
                         _f(e.get("ratio_vs_turbo")), _f(e["fidelity"]), _f(e["usable"])])
    parts.append(text_table(["prompt", "sampler", "spread", "x turbo", "fidelity", "usable"], rows))
    parts.append(f"collapse (base spread / turbo spread): {_f(s['collapse_ratio'])}; restored "
                 f"x turbo: PCA {_f(s['spread_ratio_pca'])} (fidelity {_f(s['fidelity_pca'])}), "
                 f"SAE {_f(s['spread_ratio_sae'])} (fidelity {_f(s['fidelity_sae'])})   target: "
                 f">= {t['spread_ratio']:g}x with fidelity >= {t['fidelity']}")
    return "\n".join(parts)
