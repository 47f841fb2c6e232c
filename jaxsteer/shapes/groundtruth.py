"""`jaxsteer bench groundtruth`: the method checked against the known factors of the shapes world.

DESIGN.md section 4 asks for three numbers no paper gives. Every prompt gets a pool of images
from the model under its sampler preset (`models.bundled.PRESETS`), the pool's pair
gradients (`collect.Collector`, one denoiser call at the noisiest step, the authors' default),
and their PCA and SAE directions. Then:

1. **Factor recovery.** The top-k directions of each method are steered over a range of
   strengths on several seeds (the unsteered image of each seed is the reference) and the probe
   reads the factors back. For each free continuous factor the score of a direction is
   ``|mean over seeds of Spearman(strength, change)|``, each seed's correlation taken over its
   usable samples (the reference included), where change is the factor minus its value on the
   seed's reference (hue: the signed difference wrapped to [-180, 180], so a red shape turning
   orange or magenta is a small change, not a jump of 360). Per seed, because a pooled
   correlation over every (seed, strength) sample cannot reach 1 even for a perfect direction
   (the strengths are tied across seeds: 0.98 for five levels); the signed mean, because a
   direction that moves a factor one way on some seeds and the other way on others moves it
   nowhere. A seed with fewer than 3 usable samples is skipped; one whose factor does not change
   at all counts 0. A factor's recovery is the best score over the k directions; the
   headline is the mean over (prompt, free continuous factor). Type is categorical, so it gets
   no rank correlation: its score is the share of usable steered samples whose type differs
   from the reference's, best over directions, reported beside the others and left out of the
   mean (it is not on the same scale). An image is usable when the probe finds a shape
   (`valid`) on a background no brighter than ``usable_background``: steering far enough turns
   images to noise, and the probe's readings of noise mean nothing.
2. **Complexity.** `complexity.estimate_all` on every prompt's gradients, and for each
   estimator the Spearman correlation over prompts between its value and the number of free
   factors, ``5 - len(captions.spec(prompt).fixed)``.
3. **Diversity restoration.** The collapsed generator (`turbo`: the same weights under the
   turbo preset of `PRESETS`) samples ``diversity_n`` seeds without and with random offsets
   (`diversity.random_offsets`) along directions found on its own gradients (the authors'
   recipe for distilled models) or on the base model's. Spread of a free factor: standard
   deviation (x, y, size), circular standard deviation in degrees (hue), normalised entropy
   (type); fidelity: `evaluate.score`'s share of images whose every caption-fixed factor reads
   back inside its band. The spread ratio is the geometric mean of after / before over every
   (prompt, free continuous factor); type's entropy is reported but not in the ratio (it can be
   0 before). The same table shows the collapse itself: the base preset's spread next to turbo's.

Every compiled program (a renderer and a gradient kernel per preset, PCA, SAE step,
estimators) is built once, not once per prompt: the sampler settings, batch sizes, pool size,
gradient count and differentiated row count are the same for every prompt, and partial batches
are padded.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxsteer.benchmarks import text_table
from jaxsteer.complexity import ComplexityConfig
from jaxsteer.config import opt
from jaxsteer.errors import UserError

# (caption, free factors): two or more prompts per count of free factors except 5, which only
# "a shape" has; none is a held-out combination.
DEFAULT_PROMPTS = (
    "a small red circle in the middle", "a large blue square at the top left",  # 0 free
    "a red circle in the middle", "a small yellow square on the left",           # 1
    "a red circle on the left", "a large blue square",                           # 2
    "a red circle", "a green triangle", "a circle on the left",                  # 3
    "a circle", "a large shape",                                                 # 4
    "a shape",                                                                   # 5
)
TARGETS = {"recovery": 0.9, "complexity": 0.8, "spread_ratio": 2.0, "fidelity": 0.95}
CONTINUOUS = ("hue", "x", "y", "size")


@dataclasses.dataclass(frozen=True)
class GroundTruthConfig:
    model: str = opt("shapes", "bundled shapes model, or a pipeline folder of a shapes-world "
                     "model (e.g. from `jaxsteer train-shapes`)")
    preset: str = opt("shapes", "sampler of the model: an entry of models.bundled.PRESETS")
    turbo: str = opt("shapes-turbo", "sampler of the collapsed generator of the diversity "
                     "section (same weights): a PRESETS entry")
    prompts: tuple[str, ...] = opt(DEFAULT_PROMPTS, "complexity prompts (>= 12 spanning 0..5 "
                                   "free factors for a meaningful rank correlation)")
    recovery_prompts: tuple[str, ...] = opt(("a red circle", "a circle", "a shape"),
                                            "prompts of the factor-recovery section")
    diversity_prompts: tuple[str, ...] = opt(("a red circle", "a large blue square", "a circle"),
                                             "prompts of the diversity section")
    rows: str = opt("word", "token rows differentiated and steered: word (the caption's type "
                    "word, or 'shape') | all (every row of the text embedding)",
                    choices=("word", "all"))
    pool: int = opt(16, "pool images per prompt (base sampler; also its diversity sample)")
    pairs: int = opt(96, "gradients per prompt (and per diversity prompt on the turbo sampler)")
    timestep: int | None = opt(None, "training timestep the pool image A is noised to; default: "
                               "the sampler's first (noisiest) step, the authors' choice")
    batch: int = opt(16, "images or pairs per compiled call, for every prompt (padded)")
    k: int = opt(3, "top directions of each method steered for factor recovery")
    strengths: tuple[float, ...] = opt((-1.0, -0.5, 0.5, 1.0), "steering strengths, multiples "
                                       "of the steered rows' mean norm (0, the reference, is "
                                       "always rendered)")
    seeds: int = opt(3, "seeds per (direction, strength)")
    usable_background: float = opt(0.3, "brightest background channel in [0, 1] of an image "
                                   "the probe's readings are trusted on")
    sae_k: int = opt(4, "SAE active latents (the authors' 32 is for SDXL's 2048-wide rows)")
    sae_epochs: int = opt(100, "SAE epochs")
    sae_batch: int = opt(32, "SAE minibatch")
    diversity_n: int = opt(48, "turbo samples per diversity prompt, without and with steering "
                           "(the same seeds); also the turbo gradients' pool")
    diversity_directions: str = opt("turbo", "directions of the diversity section: turbo (its "
                                    "own gradients, the authors' recipe) | base",
                                    choices=("turbo", "base"))
    diversity_strength: tuple[float, ...] = opt((0.5, 1.0), "random steering strength range "
                                                "lo,hi (multiples of the rows' mean norm)")
    diversity_mix: int = opt(1, "directions summed per random offset (the paper's variant: 3)")
    diversity_top: int = opt(0, "use only the first `top` directions of each method (0 = all "
                             "PCA directions kept for recovery and every SAE direction)")
    complexity: ComplexityConfig = opt(default_factory=ComplexityConfig,
                                       help="complexity estimators")
    seed: int = opt(0, "seed of pools, pairs, noise, steering seeds and random offsets")
    devices: int = opt(-1, "devices to use; -1 = all local devices")
    out: Path = opt(Path("runs/bench/groundtruth.json"), "JSON of every number")

    def __post_init__(self):
        from jaxsteer.models.bundled import PRESETS
        from jaxsteer.shapes.captions import spec

        for name in (self.preset, self.turbo):
            if name not in PRESETS:
                raise UserError(f"no sampler preset for model {name!r}: use one of "
                                f"{', '.join(PRESETS)}")
        for p in set(self.prompts) | set(self.recovery_prompts) | set(self.diversity_prompts):
            spec(p)  # a caption outside the grammar fails here, before anything compiles
        if len(self.prompts) < 2:
            raise UserError("--prompts: give at least 2 prompts (>= 12 for a meaningful "
                            "rank correlation)")
        if min(self.pool, self.diversity_n) < 2 or min(self.batch, self.k, self.seeds) < 1:
            raise UserError("--pool and --diversity-n must be >= 2; --batch, --k and --seeds >= 1")
        if self.pairs < max(self.k, self.complexity.mle_k + 2):
            raise UserError(f"--pairs must be >= max(k, complexity.mle_k + 2) = "
                            f"{max(self.k, self.complexity.mle_k + 2)}")
        if not self.strengths or 0.0 in self.strengths:
            raise UserError("--strengths: give non-zero strengths (0 is always rendered)")
        lo_hi = self.diversity_strength
        if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
            raise UserError(f"--diversity-strength must be lo,hi, got {lo_hi}")

    def all_prompts(self) -> tuple[str, ...]:
        """Every prompt of the three sections, each once, in first-seen order."""
        return tuple(dict.fromkeys(self.prompts + self.recovery_prompts + self.diversity_prompts))


# ---------------------------------------------------------------------------------------------
# Statistics (pure numpy; unit-tested on planted data)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when undefined (fewer than 3
    samples, or either side constant)."""
    from scipy.stats import rankdata

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
    ref_idx = {int(s): i for i, (s, a) in enumerate(zip(seed_n, strength_n)) if a == 0}
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


def _gmean(values: list[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


# ---------------------------------------------------------------------------------------------
# Model side: one preset's compiled programs, shared by every prompt


class _Preset:
    """A bundled model under one preset: renderer, gradient kernel and row helpers."""

    def __init__(self, bundle, name: str, cfg: GroundTruthConfig, mesh):
        from jaxsteer.collect import Collector
        from jaxsteer.models.bundled import PRESETS
        from jaxsteer.sampling import SamplerConfig

        self.bundle, self.name, self.cfg, self.mesh = bundle, name, cfg, mesh
        self.sampler = SamplerConfig(**PRESETS[name])
        self.collector = Collector(bundle, self.sampler, mesh, pool=True, timestep=cfg.timestep)
        self.encode_image = jax.jit(bundle.model.encode_image)

    def prepare(self, prompt: str):
        """(PromptInputs, steered rows) of a caption under the config's row choice."""
        from jaxsteer.collect import PromptInputs, pad_rows
        from jaxsteer.shapes.captions import TYPES, spec

        s = spec(prompt)
        inputs = self.collector.prepare(prompt, "shape" if s.type is None else TYPES[s.type])
        if self.cfg.rows == "all":
            rows = tuple(range(self.bundle.model.max_tokens))
            inputs = PromptInputs(inputs.cond, inputs.uncond, pad_rows(rows), len(rows))
        return inputs, tuple(int(r) for r in inputs.rows_r[: inputs.num_rows])

    def render(self, inputs, rows: tuple[int, ...], offsets_nrd: np.ndarray | None,
               keys: jax.Array) -> np.ndarray:
        """Images [n, H, W, 3] of the prompt with ``offsets_nrd`` added to its rows (None: none)."""
        from jaxsteer.models.base import TextCond
        from jaxsteer.steer import render_batches, steer_embeddings

        n = keys.shape[0]
        emb = jnp.broadcast_to(inputs.cond.emb, (n, *inputs.cond.emb.shape))
        if offsets_nrd is not None:
            emb = steer_embeddings(inputs.cond.emb, rows, jnp.asarray(offsets_nrd),
                                   jnp.ones((n,), jnp.float32))
        extra = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), inputs.cond.extra)
        return render_batches(self.bundle, self.sampler, self.mesh, TextCond(emb, extra),
                              inputs.uncond, keys, self.cfg.batch)

    def gradients(self, inputs, images: np.ndarray, key: jax.Array, seed: int) -> np.ndarray:
        """[pairs, r * d] pair gradients over a pool of images, in padded batches."""
        from jaxsteer.collect import draw_pairs

        pool = np.asarray(self.encode_image(self.bundle.params, jnp.asarray(images)))
        n, b = self.cfg.pairs, self.cfg.batch
        pairs = draw_pairs(seed, n, len(pool))
        out = []
        for start in range(0, n, b):
            idx = np.minimum(np.arange(start, start + b), n - 1)
            g = self.collector(inputs, idx, key, pool[pairs[idx, 0]], pool[pairs[idx, 1]])
            out.append(np.asarray(g)[: min(b, n - start), : inputs.num_rows])
        return np.concatenate(out).reshape(n, -1).astype(np.float32)


def _decompose(grads_nd: np.ndarray, cfg: GroundTruthConfig, seed: int) -> dict[str, Any]:
    """PCA (top k) and SAE directions [k', r * d] of one prompt's gradients, and SAE metrics."""
    from jaxsteer.decompose.pca import pca
    from jaxsteer.decompose.sae import SAEConfig, train_sae

    k = min(cfg.k, *grads_nd.shape)
    ds_pca = pca(grads_nd, k=k, seed=seed)
    sae_cfg = SAEConfig(k=cfg.sae_k, epochs=cfg.sae_epochs, batch_size=cfg.sae_batch, seed=seed)
    ds_sae, _ = train_sae(grads_nd, sae_cfg)
    return {"pca": np.asarray(ds_pca.directions), "sae": np.asarray(ds_sae.directions),
            "ev_ratio": np.asarray(ds_pca.explained_variance_ratio)[:8].round(4).tolist(),
            "significant": ds_pca.significant_count(),
            "sae_metrics": ds_sae.metadata["sae_metrics"]}


def _usable(m: dict[str, np.ndarray], cfg: GroundTruthConfig) -> np.ndarray:
    return m["valid"] & (m["background"] <= cfg.usable_background)


def _free(prompt: str) -> tuple[str, ...]:
    from jaxsteer.shapes.captions import FACTORS, spec
    fixed = spec(prompt).fixed
    return tuple(f for f in FACTORS if f not in fixed)


# ---------------------------------------------------------------------------------------------
# The three sections


def _recovery(base: _Preset, prompt: str, inputs, rows, dirs: dict, key, cfg) -> dict:
    """Steers the top-k PCA and SAE directions over the strength grid; scores every factor."""
    from jaxsteer.shapes.probe import measure
    from jaxsteer.steer import direction_rows, row_scale

    scale = row_scale(inputs.cond.emb, rows)
    strengths = np.asarray(cfg.strengths, np.float64)
    seeds = np.arange(cfg.seeds)
    # One render call: the references, then for each method and direction a (seed, strength)
    # grid; the same seed's key everywhere, so only the steering differs.
    plan = [("ref", -1, s, 0.0) for s in seeds]
    for method in ("pca", "sae"):
        for j in range(min(cfg.k, len(dirs[method]))):
            plan += [(method, j, s, a) for s in seeds for a in strengths]
    width = dirs["pca"].shape[1]
    offs = np.zeros((len(plan), width), np.float32)
    for i, (method, j, _, a) in enumerate(plan):
        if method != "ref":
            offs[i] = a * scale * dirs[method][j]
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.asarray([p[2] for p in plan]))
    m = measure(base.render(inputs, rows, direction_rows(offs, len(rows)), keys))
    usable = _usable(m, cfg)
    free = _free(prompt)
    out: dict[str, Any] = {"free": list(free), "scale": scale}
    refs = np.arange(len(seeds))
    for method in ("pca", "sae"):
        per_dir = []
        for j in range(min(cfg.k, len(dirs[method]))):
            sel = np.concatenate([refs, [i for i, p in enumerate(plan) if p[:2] == (method, j)]])
            per_dir.append(recovery_scores({f: v[sel] for f, v in m.items()}, usable[sel],
                                           np.asarray([plan[i][3] for i in sel]),
                                           np.asarray([plan[i][2] for i in sel]), free))
        out[method] = best_over_directions(per_dir, free)
    return out


def _diversity(base_images: np.ndarray, turbo: _Preset, prompt: str, inputs, rows,
               dirs: dict, keys, key, cfg) -> dict:
    """Spreads and fidelity: base preset, turbo, and turbo with random offsets per method."""
    from jaxsteer.diversity import random_offsets
    from jaxsteer.shapes.evaluate import score
    from jaxsteer.shapes.probe import measure
    from jaxsteer.steer import direction_rows, row_scale

    free = _free(prompt)
    scale = row_scale(inputs.cond.emb, rows)
    lo, hi = cfg.diversity_strength
    samples = {"base": base_images, "turbo": dirs["turbo_images"]}
    for method in ("pca", "sae"):
        d = dirs[method][: cfg.diversity_top or None]
        if len(d) == 0:
            continue
        offs = random_offsets(jax.random.fold_in(key, int(method == "sae")), jnp.asarray(d),
                              keys.shape[0], (lo * scale, hi * scale), min(cfg.diversity_mix,
                                                                          len(d)))
        samples[f"turbo+{method}"] = turbo.render(inputs, rows,
                                                  direction_rows(np.asarray(offs), len(rows)),
                                                  keys)
    out: dict[str, Any] = {"free": list(free)}
    for name, imgs in samples.items():
        m = measure(imgs)
        ok = _usable(m, cfg)
        sc = score([prompt] * len(imgs), imgs)
        out[name] = {"spread": {f: spread(f, m[f][ok]) for f in free},
                     "fidelity": sc["fixed"], "usable": float(ok.mean())}
    for name in samples:
        if name == "turbo":
            continue
        ratios = [out[name]["spread"][f] / max(out["turbo"]["spread"][f], 1e-6)
                  for f in free if f in CONTINUOUS and out[name]["spread"][f] is not None
                  and out["turbo"]["spread"][f] is not None]
        out[name]["ratio_vs_turbo"] = _gmean([max(r, 1e-6) for r in ratios])
    return out


def _complexity_table(records: list[dict]) -> dict[str, float | None]:
    names = [k for k, v in records[0]["estimates"].items() if isinstance(v, dict) and "value" in v]
    n_free = [r["n_free"] for r in records]
    return {k: spearman([r["estimates"][k]["value"] for r in records], n_free) for k in names}


# ---------------------------------------------------------------------------------------------


def run(cfg: GroundTruthConfig) -> dict:
    """Runs the benchmark, prints its tables, writes ``cfg.out`` (JSON); returns the summary."""
    from jaxsteer import records, sharding
    from jaxsteer.complexity import estimate_all
    from jaxsteer.config import to_dict
    from jaxsteer.models import load
    from jaxsteer.shapes.captions import spec

    start = time.perf_counter()
    bundle = load(cfg.model)
    mesh = sharding.local_mesh(cfg.devices)
    base, turbo = _Preset(bundle, cfg.preset, cfg, mesh), _Preset(bundle, cfg.turbo, cfg, mesh)
    k_pool, k_grad, k_steer, k_div, k_off, k_est = jax.random.split(jax.random.key(cfg.seed), 6)
    result: dict[str, Any] = {
        "config": to_dict(cfg), "model_info": bundle.info, "targets": TARGETS,
        "presets": {cfg.preset: dataclasses.asdict(base.sampler),
                    cfg.turbo: dataclasses.asdict(turbo.sampler)},
        "device": str(jax.devices()[0].device_kind), "devices": sharding.data_size(mesh),
        "recovery": {}, "complexity": {"prompts": []}, "diversity": {}}
    seconds = {"pools_and_gradients": 0.0, "decompose": 0.0, "recovery": 0.0,
               "complexity": 0.0, "diversity": 0.0}
    for i, prompt in enumerate(tqdm(cfg.all_prompts(), desc="groundtruth", unit="prompt",
                                    disable=None)):
        t0 = time.perf_counter()
        inputs, rows = base.prepare(prompt)
        pool_keys = jax.random.split(jax.random.fold_in(k_pool, i), cfg.pool)
        images = base.render(inputs, rows, None, pool_keys)
        grads = base.gradients(inputs, images, jax.random.fold_in(k_grad, i), cfg.seed + i)
        t1 = time.perf_counter()
        dirs = _decompose(grads, cfg, cfg.seed)
        t2 = time.perf_counter()
        seconds["pools_and_gradients"] += t1 - t0
        seconds["decompose"] += t2 - t1
        if prompt in cfg.prompts:
            est = estimate_all(jnp.asarray(grads), jax.random.fold_in(k_est, i), cfg.complexity)
            result["complexity"]["prompts"].append({
                "prompt": prompt, "n_free": 5 - len(spec(prompt).fixed), "rows": list(rows),
                "ev_ratio": dirs["ev_ratio"], "estimates": {
                    k: v for k, v in est.items() if isinstance(v, dict) and "value" in v}})
        t3 = time.perf_counter()
        seconds["complexity"] += t3 - t2
        if prompt in cfg.recovery_prompts:
            rec = _recovery(base, prompt, inputs, rows, dirs, jax.random.fold_in(k_steer, i), cfg)
            rec.update(sae_metrics=dirs["sae_metrics"], ev_ratio=dirs["ev_ratio"],
                       sae_directions=len(dirs["sae"]))
            result["recovery"][prompt] = rec
        t4 = time.perf_counter()
        seconds["recovery"] += t4 - t3
        if prompt in cfg.diversity_prompts:
            t_inputs, _ = turbo.prepare(prompt)
            div_keys = jax.random.split(jax.random.fold_in(k_div, i), cfg.diversity_n)
            t_images = turbo.render(t_inputs, rows, None, div_keys)
            div_dirs = dirs
            if cfg.diversity_directions == "turbo":
                t_grads = turbo.gradients(t_inputs, t_images, jax.random.fold_in(k_grad, i),
                                          cfg.seed + i)
                div_dirs = _decompose(t_grads, cfg, cfg.seed)
                div_dirs["pca"] = div_dirs["pca"][: cfg.k]
            div_dirs = {**div_dirs, "turbo_images": t_images}
            result["diversity"][prompt] = _diversity(images, turbo, prompt, t_inputs, rows,
                                                     div_dirs, div_keys,
                                                     jax.random.fold_in(k_off, i), cfg)
        seconds["diversity"] += time.perf_counter() - t4
    result["complexity"]["spearman"] = _complexity_table(result["complexity"]["prompts"])
    result["summary"] = _summary(result)
    result["seconds"] = {**{k: round(v, 1) for k, v in seconds.items()},
                         "total": round(time.perf_counter() - start, 1)}
    records.write_json(cfg.out, result)
    print(format_tables(result))
    return {"out": str(cfg.out), **result["summary"], "seconds": result["seconds"]["total"]}


def _summary(result: dict) -> dict:
    rec = result["recovery"]
    out: dict[str, Any] = {}
    for method in ("pca", "sae"):
        out[f"recovery_{method}"] = _mean([r[method][f]["score"] for r in rec.values()
                                           for f in r["free"] if f in CONTINUOUS])
    rhos = result["complexity"]["spearman"]
    out["complexity_spearman"] = {k: None if v is None else round(v, 3) for k, v in rhos.items()}
    div = result["diversity"].values()
    for method in ("pca", "sae"):
        ratios = [d[f"turbo+{method}"]["ratio_vs_turbo"] for d in div
                  if f"turbo+{method}" in d and d[f"turbo+{method}"]["ratio_vs_turbo"]]
        out[f"spread_ratio_{method}"] = _gmean(ratios)
        out[f"fidelity_{method}"] = _mean([d[f"turbo+{method}"]["fidelity"] for d in div
                                           if f"turbo+{method}" in d
                                           and d[f"turbo+{method}"]["fidelity"] is not None])
    out["collapse_ratio"] = _gmean([d["base"]["ratio_vs_turbo"] for d in div
                                    if d["base"]["ratio_vs_turbo"]])
    return out


# ---------------------------------------------------------------------------------------------
# Plain-text tables


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
