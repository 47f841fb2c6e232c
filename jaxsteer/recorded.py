"""Run configs as run folders recorded them (`config.to_dict`): today's nested form, and the
flat one of the folders written before `model:` and `sampler:` were nested sections."""

from __future__ import annotations

# The flat layout of the run configs with a model that run folders recorded before `model:` and
# `sampler:` were nested fields: {flat key: dotted field}. Frozen: fields added since are only
# ever recorded nested.
_FLAT_RECORDED = {"model": "model.name"} | {k: f"model.{k}" for k in (
    "family", "dtype", "revision", "allow_pickle", "attention", "remat_policy")} | {
    k: f"sampler.{k}" for k in ("steps", "scheduler", "spacing", "timesteps", "guidance", "remat",
                                "shared_noise")}


def recorded(d: dict) -> dict:
    """A recorded run config (`to_dict`) in today's nested form: a flat one (``"model":
    "tiny", "steps": 4``, from before the nesting) gets its ``model`` and ``sampler`` sections;
    any other config is returned as it is."""
    if not isinstance(d.get("model"), str):   # nested (a dict), or a config without a model
        return d
    out = {k: v for k, v in d.items() if k not in _FLAT_RECORDED}
    for key, dotted in _FLAT_RECORDED.items():
        if key in d:
            section, name = dotted.split(".")
            out.setdefault(section, {})[name] = d[key]
    return out
