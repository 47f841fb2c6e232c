"""Collects the tuning split's pools and gradients once on the CPU, for offline method choice.

For the first ``--per-count`` tuning prompts of each free-factor count: a pool of base-sampler
images and, at each of ``--timesteps`` (``first`` = the sampler's noisiest step), ``--pairs``
gradients w.r.t. ALL token rows (the word's row is a slice of them, so one collection serves
both row choices). Pair j uses the same noise key at every timestep, so the benchmark's
timestep mixture (pair j at stratum j mod T) is a selection of these rows. One safetensors file
per prompt under ``--out``; a prompt already there is skipped (the run resumes).

    PYTHONPATH=$PWD nice python3 scripts/groundtruth_tune_cpu.py --out runs/tune_cpu
    PYTHONPATH=$PWD python3 scripts/groundtruth_tune_cpu.py --out runs/tune_cpu --analyse

``--analyse`` ranks every (timesteps, rows, normalisation, estimator) on the stored gradients
with the benchmark's own variant table (`groundtruth.convergence.variant_values`); timestep
mixtures are assembled from the single-timestep collections (pair j from stratum j mod T, the
benchmark's rule), so every choice is compared on the same pools and pair draws at equal N.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open

from jaxsteer import records, sharding
from jaxsteer.benchmarks.groundtruth import stats
from jaxsteer.benchmarks.groundtruth.config import GroundTruthConfig
from jaxsteer.benchmarks.groundtruth.convergence import variant_values
from jaxsteer.benchmarks.groundtruth.sections import _Preset
from jaxsteer.benchmarks.groundtruth.split import complexity_prompts
from jaxsteer.collect import Collector, draw_pairs
from jaxsteer.complexity import ComplexityConfig
from jaxsteer.models import load
from jaxsteer.shapes.captions import free_count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/tune_cpu"))
    ap.add_argument("--per-count", type=int, default=3)
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=160)
    ap.add_argument("--timesteps", default="first,750,500,250")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated prompt indices to collect, in "
                    "this order (default: all)")
    ap.add_argument("--analyse", action="store_true")
    args = ap.parse_args()
    jax.config.update("jax_threefry_partitionable", True)
    if args.analyse:
        return analyse(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load("shapes")
    mesh = sharding.local_mesh()
    cfg = GroundTruthConfig(rows="all", batch=args.batch, pool=args.pool, pairs=args.pairs)
    base = _Preset(bundle, "shapes", cfg, mesh)
    steps = [None if t == "first" else int(t) for t in args.timesteps.split(",")]
    collectors = [Collector(bundle, base.sampler, mesh, pool=True, timestep=t) for t in steps]
    k_pool, k_grad = jax.random.split(jax.random.key(args.seed))
    prompts = complexity_prompts("tune", args.per_count)
    order = [int(i) for i in args.only.split(",")] if args.only else range(len(prompts))
    for i in order:
        prompt, path = prompts[i], args.out / f"{i:02d}.safetensors"
        if path.exists():
            continue
        t0 = time.perf_counter()
        inputs, rows, word = base.prepare(prompt)
        images = base.render(inputs, rows, None, jax.random.split(jax.random.fold_in(k_pool, i),
                                                                  args.pool))
        pool = np.asarray(base.encode_image(bundle.params, jnp.asarray(images)))
        pairs = draw_pairs(args.seed + i, args.pairs, len(pool))
        arrays = {"images": images.astype(np.float32)}
        for t, col in zip(args.timesteps.split(","), collectors, strict=True):
            g = col.gradients(inputs, np.arange(args.pairs), jax.random.fold_in(k_grad, i), pool,
                              pairs, batch=args.batch, pad=True)
            arrays[f"grads_t{t}"] = g.astype(np.float32)          # [pairs, rows, d]
        meta = {"prompt": prompt, "rows": json.dumps(rows),
                "word_row": json.dumps(list(word)),
                "timesteps": json.dumps([int(c.sched.t_s[0]) for c in collectors]),
                "pool": str(args.pool), "pairs": str(args.pairs), "seed": str(args.seed)}
        records.save_arrays(path, arrays, meta)
        print(f"{i:02d} {prompt!r}: {time.perf_counter() - t0:.0f} s", flush=True)


def _mixture(arrays: dict, names: list[str]) -> np.ndarray:
    """[n, r, d] rows: pair j from the (j mod T)-th named stratum."""
    out = np.array(arrays[f"grads_t{names[0]}"])
    for s, name in enumerate(names):
        out[s::len(names)] = arrays[f"grads_t{name}"][s::len(names)]
    return out


def analyse(folder: Path) -> None:
    files = sorted(folder.glob("*.safetensors"))
    strata = None
    by_config: dict[str, list[dict]] = {}
    for path in files:
        arrays = records.load_arrays(path)
        with safe_open(str(path), "np") as f:
            meta = f.metadata()
        # noisiest first; "first" is the sampler's first step (951 for the shapes preset)
        names = sorted((k[len("grads_t"):] for k in arrays if k.startswith("grads_t")),
                       key=lambda n: -1000 if n == "first" else -int(n))
        strata = strata or names
        configs = {f"t={n}": [n] for n in names}
        configs["mix:" + "+".join(names)] = names
        configs["mix:" + "+".join(names[1:])] = names[1:]
        word = json.loads(meta["word_row"])
        for cname, parts in configs.items():
            g = _mixture(arrays, parts)
            values = variant_values({"all": g, "word": g[:, word]}, jax.random.key(0),
                                    ComplexityConfig())
            by_config.setdefault(cname, []).append({"prompt": meta["prompt"],
                                                  "n_free": free_count(meta["prompt"]),
                                                  "variants": values})
    table = {c: stats.variant_table(r) for c, r in by_config.items()}
    best = sorted(((rho, c, v, e) for c, t in table.items() for v, d in t.items()
                   for e, rho in d.items() if rho is not None), reverse=True)
    print(f"{len(files)} tuning prompts, timesteps {strata}")
    for rho, c, v, e in best[:25]:
        vals = [r["variants"][v][e] for r in by_config[c]]
        n_free = [r["n_free"] for r in by_config[c]]
        ci = stats.spearman_interval(vals, n_free, seed=0)
        means = stats.means_by_count(vals, n_free)
        print(f"{rho:6.2f} [{ci[0]:5.2f},{ci[1]:5.2f}]  {c:24s} {v:10s} {e:26s} means "
              + " ".join(f"{k}:{m:.1f}" for k, m in means.items()))
    for c in table:
        row = " ".join(f"{v}:{e}={table[c][v][e]:.2f}" for v in table[c]
                       for e in ("subspace_size_fixed", "parallel_analysis", "mle")
                       if table[c][v][e] is not None)
        print(c, row)
    records.write_json(folder / "analysis.json", {"table": table, "records": by_config})


if __name__ == "__main__":
    main()
