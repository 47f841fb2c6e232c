"""The ground-truth benchmark's model side and its three sections (see the package docstring)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxsteer import records, sharding
from jaxsteer.benchmarks.groundtruth import convergence, stats, worlds
from jaxsteer.benchmarks.groundtruth.config import (
    CONTINUOUS,
    FIRST_STEP,
    STAND_IN,
    TARGETS,
    GroundTruthBench,
    GroundTruthConfig,
    variant_name,
)
from jaxsteer.benchmarks.groundtruth.resume import ADDED_KEYS as ADDED_KEYS
from jaxsteer.benchmarks.groundtruth.resume import SUMMARY_ONLY as SUMMARY_ONLY
from jaxsteer.benchmarks.groundtruth.resume import resumed as _resumed
from jaxsteer.collect import Collector, draw_pairs, every_row
from jaxsteer.complexity import estimate_all, normalize_rows
from jaxsteer.config import to_dict
from jaxsteer.decompose.pca import pca
from jaxsteer.decompose.sae import SAEConfig, train_sae
from jaxsteer.diversity import random_offsets
from jaxsteer.diversity_distillation import distilled_diversity
from jaxsteer.models import load
from jaxsteer.models.bundled import PRESETS, preset_bundle
from jaxsteer.sampling import SamplerConfig
from jaxsteer.steer import direction_rows, render_batches, row_scale, steered_cond


class _Preset:
    """A bundled model under one preset: renderer, gradient kernels and row helpers."""

    def __init__(self, bundle, name: str, cfg: GroundTruthConfig, mesh):
        self.bundle, self.name, self.cfg, self.mesh = bundle, name, cfg, mesh
        self.world = worlds.get(cfg.world)
        self.sampler = SamplerConfig(**PRESETS[name])
        # One Collector per timestep stratum; the step schedule is an argument of the kernel,
        # so they all share one compiled program.
        self.collectors = [Collector(bundle, self.sampler, mesh, pool=True,
                                     timestep=None if t == FIRST_STEP else t)
                           for t in (cfg.timesteps or (FIRST_STEP,))]
        self.encode_image = jax.jit(bundle.model.encode_image)

    @property
    def timesteps(self) -> list[int]:
        return [int(c.sched.t_s[0]) for c in self.collectors]

    def prepare(self, prompt: str):
        """(PromptInputs, steered rows, the word's rows) of a caption under the row choice."""
        inputs = self.collectors[0].prepare(prompt, self.world.word(prompt))
        word = tuple(int(r) for r in inputs.rows_r[: inputs.num_rows])
        if self.cfg.rows == "all":
            inputs = every_row(inputs, self.bundle.model.max_tokens)
        return inputs, tuple(int(r) for r in inputs.rows_r[: inputs.num_rows]), word

    def render(self, inputs, rows: tuple[int, ...], offsets_nrd: np.ndarray | None,
               keys: jax.Array) -> np.ndarray:
        """Images [n, H, W, 3] of the prompt with ``offsets_nrd`` added to its rows (None: none)."""
        cond = steered_cond(inputs.cond, rows, offsets_nrd, n=keys.shape[0])
        return render_batches(self.bundle, self.sampler, self.mesh, cond, inputs.uncond, keys,
                              self.cfg.batch)

    def gradients(self, inputs, images: np.ndarray, key: jax.Array, seed: int,
                  n: int) -> np.ndarray:
        """[n, r, d] pair gradients over a pool of images, in padded batches; pair j at the
        (j mod T)-th timestep, so every prefix of the rows is an even mixture of the strata."""
        pool = np.asarray(self.encode_image(self.bundle.params, jnp.asarray(images)))
        pairs = draw_pairs(seed, n, len(pool))
        out = None
        for s, col in enumerate(self.collectors):
            idx = np.arange(s, n, len(self.collectors))
            if len(idx) == 0:
                continue
            g = col.gradients(inputs, idx, key, pool, pairs, batch=self.cfg.batch,
                              pad=True)  # one program for every batch
            out = np.zeros((n, *g.shape[1:]), np.float32) if out is None else out
            out[idx] = g
        return out


def _prompt_id(prompt: str, world: worlds.World) -> int:
    """The integer a prompt's pool, pairs and noise are seeded with: its caption hash, so a
    prompt draws the same pool and gradients in any list, at any position."""
    return world.prompt_hash(prompt) % (2**31 - 1)


def _decompose(grads_nd: np.ndarray, cfg: GroundTruthConfig, seed: int,
               sae: bool = True) -> dict[str, Any]:
    """PCA (top k) and, with ``sae``, SAE directions [k', r * d] of one prompt's gradients."""
    k = min(cfg.k, *grads_nd.shape)
    ds_pca = pca(grads_nd, k=k, seed=seed)
    share = np.asarray(ds_pca.explained_variance_ratio)   # also the gaussian offsets' weights
    out = {"pca": np.asarray(ds_pca.directions), "pca_share": share,
           "ev_ratio": share[:8].round(4).tolist(), "significant": ds_pca.significant_count()}
    if sae:
        sae_cfg = SAEConfig(k=cfg.sae_k, epochs=cfg.sae_epochs, batch_size=cfg.sae_batch,
                            seed=seed)
        ds_sae, _ = train_sae(grads_nd, sae_cfg)
        out.update(sae=np.asarray(ds_sae.directions), sae_metrics=ds_sae.metadata["sae_metrics"])
    return out


def _usable(m: dict[str, np.ndarray], cfg: GroundTruthConfig) -> np.ndarray:
    return m["valid"] & (m[worlds.get(cfg.world).wash] <= cfg.usable_background)


# ---------------------------------------------------------------------------------------------
# The three sections


def _recovery(base: _Preset, prompt: str, inputs, rows, dirs: dict, key, cfg) -> dict:
    """Steers the top-k PCA and SAE directions over the strength grid; scores every factor."""
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
    m = base.world.measure(base.render(inputs, rows, direction_rows(offs, len(rows)), keys))
    usable = _usable(m, cfg)
    free = base.world.free(prompt)
    out: dict[str, Any] = {"free": list(free), "scale": scale}
    refs = np.arange(len(seeds))
    for method in ("pca", "sae"):
        per_dir = []
        for j in range(min(cfg.k, len(dirs[method]))):
            sel = np.concatenate([refs, [i for i, p in enumerate(plan) if p[:2] == (method, j)]])
            per_dir.append(stats.recovery_scores({f: v[sel] for f, v in m.items()}, usable[sel],
                                           np.asarray([plan[i][3] for i in sel]),
                                           np.asarray([plan[i][2] for i in sel]), free))
        out[method] = stats.best_over_directions(per_dir, free)
    return out


def _diversity(base_images: np.ndarray, turbo: _Preset, prompt: str, inputs, rows,
               dirs: dict, keys, key, cfg, base: _Preset | None = None) -> dict:
    """Spreads and fidelity: base preset, turbo, and turbo with random offsets per method (and
    the diversity distillation baseline, turbo+dd<k>, with ``base``)."""
    world = turbo.world
    free = world.free(prompt)
    scale = row_scale(inputs.cond.emb, rows)
    lo, hi = cfg.diversity_strength
    samples = {"base": base_images, "turbo": dirs["turbo_images"]}
    for method in ("pca", "sae"):
        d = dirs[method][: cfg.diversity_top or None]
        if len(d) == 0:
            continue
        share = jnp.asarray(dirs["pca_share"][: len(d)]) if method == "pca" else None
        for x in cfg.rendered_scales():
            # the same key at every scale: the variants differ only in the offsets' length
            offs = random_offsets(jax.random.fold_in(key, int(method == "sae")), jnp.asarray(d),
                                  keys.shape[0], (x * lo * scale, x * hi * scale),
                                  min(cfg.diversity_mix, len(d)), cfg.diversity_mode, share)
            samples[variant_name(method, x)] = turbo.render(
                inputs, rows, direction_rows(np.asarray(offs), len(rows)), keys)
    for k in cfg.baseline_steps if base is not None else ():  # the base's first k steps
        samples[f"turbo+dd{k}"] = distilled_diversity(turbo.bundle, turbo.sampler, base.bundle,
                                                      base.sampler.guidance, prompt, keys, k,
                                                      turbo.mesh, cfg.batch)
    out: dict[str, Any] = {"free": list(free)}
    for name, imgs in samples.items():
        m = world.measure(imgs)
        ok = _usable(m, cfg)
        out[name] = {"spread": {f: stats.spread(f, m[f][ok]) for f in free},
                     "fidelity": world.fidelity(prompt, imgs), "usable": float(ok.mean())}
        if name.startswith("turbo+dd"):  # its cost: the base model's denoiser calls per image
            out[name]["base_calls"] = int(name[8:]) * (2 if base.sampler.use_cfg else 1)
    for name in samples:
        if name == "turbo":
            continue
        ratios = [out[name]["spread"][f] / max(out["turbo"]["spread"][f], 1e-6)
                  for f in free if f in CONTINUOUS and out[name]["spread"][f] is not None
                  and out["turbo"]["spread"][f] is not None]
        out[name]["ratio_vs_turbo"] = stats.gmean([max(r, 1e-6) for r in ratios])
    return out


def _complexity_record(prompt: str, grads_nrd: np.ndarray, rows, word, dirs: dict, key,
                       cfg: GroundTruthConfig, converge: bool) -> dict:
    """Every estimate of a prompt's first ``cfg.pairs`` gradients (the configured
    normalisation), the tuning variants, and with ``converge`` the convergence table of all
    its gradients."""
    main = normalize_rows(jnp.asarray(grads_nrd[: cfg.pairs].reshape(cfg.pairs, -1)),
                          cfg.normalize)
    k_est, k_var, k_conv = jax.random.split(key, 3)
    est = estimate_all(main, k_est, cfg.complexity)
    record = {"prompt": prompt, "n_free": worlds.get(cfg.world).free_count(prompt),
              "rows": list(rows),
              "ev_ratio": dirs["ev_ratio"],
              "estimates": {k: v for k, v in est.items() if isinstance(v, dict) and "value" in v}}
    if cfg.variants:
        views = {cfg.rows: grads_nrd[: cfg.pairs]}
        if cfg.rows == "all":   # the word's own row(s) are a slice of every row's gradient
            views["word"] = grads_nrd[: cfg.pairs][:, list(word)]
        record["variants"] = convergence.variant_values(views, k_var, cfg.complexity)
    if converge:
        full = normalize_rows(jnp.asarray(grads_nrd.reshape(len(grads_nrd), -1)), cfg.normalize)
        record["convergence"] = convergence.convergence(full, cfg.convergence_n, k_conv,
                                                        cfg.complexity, cfg.headline)
    return record


def run(cfg: GroundTruthConfig) -> dict:
    """Runs the benchmark, prints its tables, writes ``cfg.out`` (JSON); returns the summary.
    An unfinished run of the same settings at ``cfg.out`` is resumed (`_resumed`)."""
    start = time.perf_counter()
    cfg = cfg.resolved()
    if cfg.turbo == STAND_IN:   # the result says it too: config.turbo, summary.headline.turbo
        print(f"note: the diversity section's collapsed generator is the stand-in {STAND_IN} "
              f"(the model's weights, shared starting noise), not a distilled student of "
              f"{cfg.model}", flush=True)
    bundle = load(cfg.model)
    mesh = sharding.local_mesh(cfg.devices)
    base = _Preset(bundle, cfg.preset, cfg, mesh)
    turbo = _Preset(preset_bundle(cfg.turbo, cfg.model, bundle), cfg.turbo, cfg, mesh)
    k_pool, k_grad, k_steer, k_div, k_off, k_est = jax.random.split(jax.random.key(cfg.seed), 6)
    count = base.world.free_count
    conv_set = set(convergence.round_robin(cfg.prompts, cfg.convergence_prompts, count))
    result: dict[str, Any] = {
        "config": to_dict(cfg), "model_info": bundle.info, "targets": TARGETS,
        "presets": {cfg.preset: dataclasses.asdict(base.sampler),
                    cfg.turbo: dataclasses.asdict(turbo.sampler)},
        "timesteps": {cfg.preset: base.timesteps, cfg.turbo: turbo.timesteps},
        "device": str(jax.devices()[0].device_kind), "devices": sharding.data_size(mesh),
        "jax": jax.__version__, "recovery": {}, "complexity": {"prompts": []}, "diversity": {}}
    result = _resumed(cfg, result)
    before = result.pop("seconds", {})   # a resumed run's time so far
    seconds = {k: float(before.get(k, 0.0)) for k in (
        "pools_and_gradients", "decompose", "recovery", "complexity", "diversity")}
    done = ({r["prompt"] for r in result["complexity"]["prompts"]} | set(result["recovery"])
            | set(result["diversity"]))
    # Free-factor counts in turn, so that a run stopped early has already seen every count
    # (a rank correlation over 0- and 1-factor prompts alone says little).
    todo = [p for p in convergence.round_robin(cfg.all_prompts(), len(cfg.all_prompts()), count)
            if p not in done]
    if done:
        print(f"resuming {cfg.out}: {len(done)} prompts done, {len(todo)} to go", flush=True)
    for prompt in tqdm(todo, desc="groundtruth", unit="prompt", disable=None):
        i = _prompt_id(prompt, base.world)
        t0 = time.perf_counter()
        inputs, rows, word = base.prepare(prompt)
        pool_keys = jax.random.split(jax.random.fold_in(k_pool, i), cfg.pool)
        images = base.render(inputs, rows, None, pool_keys)
        n = cfg.convergence_pairs if prompt in conv_set else cfg.pairs
        grads_nrd = base.gradients(inputs, images, jax.random.fold_in(k_grad, i), cfg.seed + i, n)
        grads = np.asarray(normalize_rows(jnp.asarray(grads_nrd[: cfg.pairs].reshape(
            cfg.pairs, -1)), cfg.normalize))
        t1 = time.perf_counter()
        steered = prompt in cfg.recovery_prompts or prompt in cfg.diversity_prompts
        dirs = _decompose(grads, cfg, cfg.seed, sae=steered)
        t2 = time.perf_counter()
        seconds["pools_and_gradients"] += t1 - t0
        seconds["decompose"] += t2 - t1
        if prompt in cfg.prompts:
            result["complexity"]["prompts"].append(_complexity_record(
                prompt, grads_nrd, rows, word, dirs, jax.random.fold_in(k_est, i), cfg,
                converge=prompt in conv_set))
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
            t_inputs, _, _ = turbo.prepare(prompt)
            div_keys = jax.random.split(jax.random.fold_in(k_div, i), cfg.diversity_n)
            t_images = turbo.render(t_inputs, rows, None, div_keys)
            div_dirs = dirs
            if cfg.diversity_directions == "turbo":
                t_grads = turbo.gradients(t_inputs, t_images, jax.random.fold_in(k_grad, i),
                                          cfg.seed + i, cfg.pairs)
                t_grads = np.asarray(normalize_rows(jnp.asarray(
                    t_grads.reshape(cfg.pairs, -1)), cfg.normalize))
                div_dirs = _decompose(t_grads, cfg, cfg.seed)
                div_dirs["pca"] = div_dirs["pca"][: cfg.k]
            div_dirs = {**div_dirs, "turbo_images": t_images}
            result["diversity"][prompt] = _diversity(images, turbo, prompt, t_inputs, rows,
                                                     div_dirs, div_keys,
                                                     jax.random.fold_in(k_off, i), cfg, base)
        seconds["diversity"] += time.perf_counter() - t4
        # Each prompt's records as soon as they exist: a run stopped by a time limit (one GPU
        # command) still leaves every finished prompt, marked partial.
        records.write_json(cfg.out, {**result, "partial": True,
                                     "seconds": {k: round(v, 1) for k, v in seconds.items()}})
    comp = result["complexity"]
    order = {p: j for j, p in enumerate(cfg.prompts)}   # the tables in the configured order
    comp["prompts"].sort(key=lambda r: order[r["prompt"]])
    comp["spearman"] = stats.complexity_table(comp["prompts"])
    comp["ranking"] = stats.ranking_table(comp["prompts"])
    if cfg.variants:
        comp["variants"] = stats.variant_table(comp["prompts"])
    result["summary"] = stats.summary(result)
    result["summary"]["headline"] = stats.headline(result, cfg)
    result["seconds"] = {**{k: round(v, 1) for k, v in seconds.items()},
                         "total": round(time.perf_counter() - start, 1)}
    records.write_json(cfg.out, result)
    print(stats.format_tables(result))
    return {"out": str(cfg.out), **result["summary"], "seconds": result["seconds"]["total"]}


def run_bench(cfg: GroundTruthBench) -> dict:
    """`jaxsteer bench groundtruth`: writes to its own ``--groundtruth.out``."""
    return run(cfg.groundtruth)
