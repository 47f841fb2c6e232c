"""Resuming an unfinished ground-truth run: which partial JSON may be continued, and by whom."""

from __future__ import annotations

import json

from jaxsteer import records
from jaxsteer.errors import UserError

# Config keys added since partial runs were first written, with the value those runs used
# (a run from before `world` existed ran on the shapes world).
ADDED_KEYS = {"diversity_scales": [1.0], "baseline_steps": [], "world": "shapes",
              "diversity_mode": "uniform"}
# The same for the estimators' settings (before n_boot_pa, parallel analysis had no interval).
ADDED_COMPLEXITY_KEYS = {"n_boot_pa": 0}
# Config keys that choose only what summary.headline reports, recomputed at the end.
SUMMARY_ONLY = ("headline", "headline_directions", "headline_diversity")


def resumed(cfg, fresh: dict) -> dict:
    """``fresh`` with the finished prompts of the partial run at ``cfg.out``, if it was made by
    these settings, this model and this jax (every prompt's numbers are a function of its own
    key, so a resumed run equals an uninterrupted one); ``fresh`` when there is none or it is
    complete. A partial run of other settings, or of another world, is refused rather than
    mixed or overwritten."""
    if not cfg.out.is_file():
        return fresh
    try:
        old = records.read_json(cfg.out)
    except (OSError, ValueError):
        raise UserError(f"{cfg.out} is not a readable ground-truth JSON: move it away or give "
                        f"another --groundtruth.out") from None
    if not isinstance(old, dict) or not old.get("partial"):
        return fresh
    same = {k: json.loads(json.dumps(fresh[k])) for k in ("config", "model_info", "jax")}
    was = {k: old.get(k) for k in same}
    if isinstance(was["config"], dict):   # a run from before a key existed ran its old default
        was["config"] = {**ADDED_KEYS, **was["config"]}
        if isinstance(was["config"].get("complexity"), dict):
            was["config"]["complexity"] = {**ADDED_COMPLEXITY_KEYS, **was["config"]["complexity"]}
        for k in SUMMARY_ONLY:   # chosen after the records: not part of what resumes
            was["config"].pop(k, None)
            same["config"].pop(k, None)
        if was["config"]["world"] != same["config"]["world"]:
            raise UserError(f"{cfg.out} holds an unfinished run of the "
                            f"{was['config']['world']} world, not {same['config']['world']}: "
                            f"give another --groundtruth.out, or delete it to start again")
    if was != same:
        raise UserError(f"{cfg.out} holds an unfinished run with other settings (or another "
                        f"model or jax): rerun those settings to finish it, give another "
                        f"--groundtruth.out, or delete it to start again")
    return {**fresh, **{k: old[k] for k in ("recovery", "complexity", "diversity")},
            "seconds": old.get("seconds", {})}
