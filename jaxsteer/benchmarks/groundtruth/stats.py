"""The ground-truth benchmark's statistics and tables: pure numpy, unit-tested on planted data."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from jaxsteer.benchmarks import text_table
from jaxsteer.benchmarks.groundtruth.config import CONTINUOUS, TARGETS
from jaxsteer.benchmarks.groundtruth.worlds import LEVELS


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
    the histogram over log(levels) for a categorical factor (type over log 3; the scenes world's
    texture, background, dot: `worlds.LEVELS`); None for fewer than 2 values."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return None
    if factor in LEVELS:
        n = LEVELS[factor]
        p = np.bincount(v.astype(int), minlength=n)[:n] / len(v)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / np.log(n))
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
      a categorical factor's (type; texture, background, dot) score is the share of usable
      steered samples whose level differs from the reference's.
    """
    ref_idx = {int(s): i for i, (s, a) in enumerate(zip(seed_n, strength_n, strict=True)) if a == 0}
    ref = np.array([ref_idx.get(int(s), -1) for s in seed_n])
    ok = usable & (ref >= 0) & usable[np.maximum(ref, 0)]
    out = {}
    for f in free:
        vals, refs = factors[f][ok], factors[f][ref[ok]]
        if f in LEVELS:
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


def spearman_interval(values: np.ndarray, n_free: np.ndarray, seed: int, n_boot: int = 1000,
                      level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of Spearman(values, n_free) over resampled prompts; None
    when fewer than half the replicates are defined (too few prompts, or constant values)."""
    values, n_free = np.asarray(values, np.float64), np.asarray(n_free, np.float64)
    rng = np.random.default_rng(seed)
    reps = [spearman(values[i], n_free[i])
            for i in rng.integers(0, len(values), (n_boot, len(values)))]
    reps = [r for r in reps if r is not None]
    if len(reps) < n_boot / 2:
        return None
    tail = (1.0 - level) / 2.0
    return [float(np.quantile(reps, tail)), float(np.quantile(reps, 1.0 - tail))]


def means_by_count(values: list[float], n_free: list[int]) -> dict[int, float]:
    """Mean value per free-factor count, in count order."""
    v, c = np.asarray(values, np.float64), np.asarray(n_free)
    return {int(k): float(v[c == k].mean()) for k in np.unique(c)}


def ranking_table(records: list[dict]) -> dict[str, dict]:
    """For each estimator: Spearman with the free-factor count, its bootstrap interval over
    prompts, the mean estimate per count, and whether those means strictly increase."""
    names = [k for k, v in records[0]["estimates"].items() if isinstance(v, dict) and "value" in v]
    n_free = [r["n_free"] for r in records]
    out = {}
    for i, name in enumerate(names):
        values = [r["estimates"][name]["value"] for r in records]
        means = means_by_count(values, n_free)
        m = list(means.values())
        out[name] = {"spearman": spearman(values, n_free),
                     "ci": spearman_interval(values, n_free, seed=i),
                     "means": {str(k): round(v, 3) for k, v in means.items()},
                     "monotone": bool(len(m) > 1 and np.all(np.diff(m) > 0))}
    return out


def variant_table(records: list[dict]) -> dict[str, dict[str, float | None]]:
    """{variant: {estimator: Spearman with the free-factor count}} over the prompts' variants."""
    n_free = [r["n_free"] for r in records]
    first = records[0]["variants"]
    return {v: {name: spearman([r["variants"][v][name] for r in records], n_free)
                for name in first[v]} for v in first}


def headline(result: dict, cfg: Any) -> dict:
    """`summary.headline`: the one named method's recovery, complexity ranking, spread ratio
    and fidelity, with the method's every choice written beside them."""
    s, d = result["summary"], cfg.headline_directions
    rank = result["complexity"]["ranking"].get(cfg.headline, {})
    div = s.get("diversity_variants", {}).get(cfg.headline_diversity, {})
    return {"method": {"world": cfg.world, "estimator": cfg.headline, "directions": d,
                       "rows": cfg.rows, "diversity": cfg.headline_diversity, "turbo": cfg.turbo,
                       "timesteps": result["timesteps"][cfg.preset], "normalize": cfg.normalize,
                       "threshold_mode": cfg.complexity.threshold_mode,
                       "threshold_factor": cfg.complexity.threshold_factor,
                       "pairs": cfg.pairs, "pool": cfg.pool},
            "split": cfg.split, "scale": cfg.scale,
            "recovery": s.get(f"recovery_{d}"), "complexity": rank.get("spearman"),
            "complexity_ci": rank.get("ci"), "complexity_monotone": rank.get("monotone"),
            "spread_ratio": div.get("spread_ratio"), "fidelity": div.get("fidelity")}


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
    # every steered or baseline sampler over the prompts: the diversity tuning table
    names = dict.fromkeys(n for d in div for n in d if n.startswith("turbo+"))
    out["diversity_variants"] = {
        n: {"spread_ratio": gmean([d[n]["ratio_vs_turbo"] for d in div
                                   if n in d and d[n]["ratio_vs_turbo"]]),
            "fidelity": mean([d[n]["fidelity"] for d in div
                              if n in d and d[n]["fidelity"] is not None])} for n in names}
    return out


def _f(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def format_tables(result: dict) -> str:
    """The three sections as plain-text tables, with the targets next to the numbers."""
    s, t = result["summary"], TARGETS
    categorical = "type" if result["config"].get("world", "shapes") == "shapes" else \
        "categorical factors"
    parts = [(f"factor recovery: best |mean per-seed Spearman(strength, change)| over the top "
              f"{result['config']['k']} directions ({categorical}: share changed, not in the "
              f"mean)")]
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
    ranking = result["complexity"].get("ranking", {})
    if ranking:
        cis = [ranking[k]["ci"] for k in names]
        rows.append(["95% interval", ""] + ["-" if c is None else f"{c[0]:.2f}..{c[1]:.2f}"
                                            for c in cis])
        rows.append(["means rise", ""] + ["yes" if ranking[k]["monotone"] else "no" for k in names])
    parts.append(text_table(["prompt", "free"] + names, rows))
    parts.append(f"target >= {t['complexity']}")
    parts += _convergence_lines(recs)
    parts += _variant_lines(result["complexity"].get("variants"))
    entropy = "type entropy / log 3" if categorical == "type" else \
        "categorical: entropy / log levels"
    parts.append(f"\ndiversity: spread of free factors (std; hue circular std in degrees; "
                 f"{entropy}), fidelity = share obeying the caption's fixed factors")
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
    variants = s.get("diversity_variants") or {}
    if len(variants) > 2:
        parts.append(text_table(["sampler", "x turbo", "fidelity"],
                                [[n, _f(v["spread_ratio"]), _f(v["fidelity"])]
                                 for n, v in variants.items()]))
    h = s.get("headline")
    if h:
        parts.append(f"\nheadline ({h['method']['estimator']}, {h['method']['directions']} "
                     f"directions, {h['method'].get('diversity')} on {h['method'].get('turbo')}, "
                     f"{h['split']} split, {h['scale']} scale): recovery "
                     f"{_f(h['recovery'])}, complexity Spearman {_f(h['complexity'])}, spread "
                     f"x{_f(h['spread_ratio'])} at fidelity {_f(h['fidelity'])}")
    return "\n".join(parts)


def _convergence_lines(records: list[dict]) -> list[str]:
    rows = []
    for r in records:
        c = r.get("convergence")
        for p in (c or {}).get("points", []):
            ci = p["estimate"]["ci"]
            rows.append([r["prompt"], str(r["n_free"]), str(p["n"]), str(p["k"]),
                         _f(p["spanned"]), _f(p["spurious"]), _f(p["estimate"]["value"], 1),
                         "-" if ci is None else f"{ci[0]:.1f}..{ci[1]:.1f}"])
    if not rows:
        return []
    name = next(r["convergence"]["estimator"] for r in records if r.get("convergence"))
    return ["\nconvergence: significant subspace of the first N gradients against all of them "
            f"(spanned / spurious fractions), and {name} with its 95% bootstrap interval",
            text_table(["prompt", "free", "N", "k", "spanned", "spurious", name, "interval"],
                       rows)]


def _variant_lines(variants: dict | None, top: int = 12) -> list[str]:
    """The best (variant, estimator) pairs by Spearman, for the tuning split's table."""
    if not variants:
        return []
    pairs = sorted(((rho, v, name) for v, d in variants.items() for name, rho in d.items()
                    if rho is not None), reverse=True)
    rows = [[v, name, _f(rho)] for rho, v, name in pairs[:top]]
    return [f"\nvariants: the {min(top, len(pairs))} best (rows/normalisation, estimator) "
            "by Spearman, point values on the same gradients (JSON: complexity.variants)",
            text_table(["variant", "estimator", "Spearman"], rows)]
