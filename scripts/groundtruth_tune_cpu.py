"""Collects the tuning split's pools and gradients once on the CPU, for offline method choice.

For the first ``--per-count`` tuning prompts of each free-factor count: a pool of base-sampler
images and, at each of ``--timesteps`` (``first`` = the sampler's noisiest step), ``--pairs``
gradients w.r.t. ALL token rows (the word's row is a slice of them, so one collection serves
both row choices). Pair j uses the same noise key at every timestep, so the benchmark's
timestep mixture (pair j at stratum j mod T) is a selection of these rows. One safetensors file
per prompt under ``--out``; a prompt already there is skipped (the run resumes).

    PYTHONPATH=$PWD nice python3 scripts/groundtruth_tune_cpu.py --out runs/tune_cpu
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsteer import records, sharding
from jaxsteer.benchmarks.groundtruth.config import GroundTruthConfig
from jaxsteer.benchmarks.groundtruth.sections import _Preset
from jaxsteer.benchmarks.groundtruth.split import complexity_prompts
from jaxsteer.collect import Collector, draw_pairs
from jaxsteer.models import load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/tune_cpu"))
    ap.add_argument("--per-count", type=int, default=3)
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=160)
    ap.add_argument("--timesteps", default="first,750,500,250")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    jax.config.update("jax_threefry_partitionable", True)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = load("shapes")
    mesh = sharding.local_mesh()
    cfg = GroundTruthConfig(rows="all", batch=args.batch, pool=args.pool, pairs=args.pairs)
    base = _Preset(bundle, "shapes", cfg, mesh)
    steps = [None if t == "first" else int(t) for t in args.timesteps.split(",")]
    collectors = [Collector(bundle, base.sampler, mesh, pool=True, timestep=t) for t in steps]
    k_pool, k_grad = jax.random.split(jax.random.key(args.seed))
    for i, prompt in enumerate(complexity_prompts("tune", args.per_count)):
        path = args.out / f"{i:02d}.safetensors"
        if path.exists():
            continue
        t0 = time.perf_counter()
        inputs, rows = base.prepare(prompt)
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
                "word_row": json.dumps(list(_Preset(bundle, "shapes", GroundTruthConfig(),
                                                    mesh).prepare(prompt)[1])),
                "timesteps": json.dumps([int(c.sched.t_s[0]) for c in collectors]),
                "pool": str(args.pool), "pairs": str(args.pairs), "seed": str(args.seed)}
        records.save_arrays(path, arrays, meta)
        print(f"{i:02d} {prompt!r}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
