"""What `jaxsteer survey --ci-width W` saves against a fixed N, on the test split's prompts.

    python3 scripts/adaptive_saving.py --out runs/adaptive [--max-pairs 256] [--split test]

One survey of the bundled shapes model over the split's complexity prompts (the ground-truth
benchmark's `cpu`-scale list) with an unreachable width, so every prompt runs every round
(--pairs, doubled to --max-pairs). A round's estimate is what a fixed-N survey of that many
gradients records (the survey keys each round alike), so the one run gives, for every width W,
the N an adaptive survey would stop at per prompt, its total against the fixed --max-pairs, and
how far its estimate lies from the fixed-N one. Writes OUT/saving.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jaxsteer.survey import converged  # noqa: E402  (after the path)

WIDTHS = (0.5, 1.0, 2.0, 3.0, 4.0, 8.0)


def survey(prompts: list[str], out: Path, args) -> list[dict]:
    from jaxsteer.records import read_records
    out.mkdir(parents=True, exist_ok=True)
    path = out / "prompts.txt"
    path.write_text("".join(p + "\n" for p in prompts))
    cmd = [sys.executable, "-m", "jaxsteer.cli", "survey", str(path), "--model", "shapes",
           "--pool", str(args.pool), "--pairs", str(args.pairs), "--max-pairs",
           str(args.max_pairs), "--ci-width", "1e-9", "--ci-estimator", args.estimator,
           "--complexity.n-boot-spectral", "20", "--complexity.vaease.enabled", "false",
           "--out", str(out / "survey"), *args.flags.split()]
    subprocess.run(cmd, check=True)
    return [r for p in sorted((out / "survey").glob("records-*.jsonl"))
            for r in read_records(p) if "adaptive" in r]


def saving(recs: list[dict], widths=WIDTHS) -> list[dict]:
    """Per width, under the survey's own stopping rule (`survey.converged`): total gradients of
    the adaptive stop, its share of the fixed run, and the mean / max |estimate - fixed-N
    estimate| over prompts."""
    rows = []
    for w in widths:
        used, err, full = [], [], recs[0]["adaptive"]["rounds"][-1]["pairs"]
        for r in recs:
            rounds = r["adaptive"]["rounds"]
            stop = next((x for i, x in enumerate(rounds) if converged(rounds[: i + 1], w)),
                        rounds[-1])
            used.append(stop["pairs"])
            err.append(abs(stop["value"] - rounds[-1]["value"]))
        fixed = len(recs) * full
        rows.append({"width": w, "gradients": int(sum(used)), "share_of_fixed": sum(used) / fixed,
                     "mean_abs_error": float(np.mean(err)), "max_abs_error": float(np.max(err)),
                     "stopped_early": int(sum(u < full for u in used))})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/adaptive"))
    p.add_argument("--split", default="test")
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--max-pairs", type=int, default=256)
    p.add_argument("--pool", type=int, default=16)
    p.add_argument("--estimator", default="subspace_size")
    p.add_argument("--flags", default="", help="more survey flags, e.g. the benchmark's method: "
                   "'--timestep 500 --rows all --normalize l2'")
    args = p.parse_args(argv)
    from jaxsteer.benchmarks.groundtruth import SCALES, complexity_prompts
    prompts = list(complexity_prompts(args.split, SCALES["cpu"]["per_count"]))
    recs = survey(prompts, args.out, args)
    table = saving(recs)
    per_prompt = [{"prompt": r["prompt"], "rounds": r["adaptive"]["rounds"]} for r in recs]
    (args.out / "saving.json").write_text(json.dumps(
        {"split": args.split, "estimator": args.estimator, "pool": args.pool, "flags": args.flags,
         "fixed_pairs": args.max_pairs, "table": table, "prompts": per_prompt}, indent=1))
    print("width  gradients  share  mean|err|  max|err|  stopped early")
    for t in table:
        print(f"{t['width']:5g}  {t['gradients']:9d}  {t['share_of_fixed']:.2f}  "
              f"{t['mean_abs_error']:9.2f}  {t['max_abs_error']:8.2f}  "
              f"{t['stopped_early']}/{len(recs)}")


if __name__ == "__main__":
    main()
