"""`jaxsteer.recorded`: flat run configs recorded before the nesting read back nested."""

from jaxsteer import config
from jaxsteer.recorded import recorded

# `to_dict` of a CollectRun as run folders recorded it before model: / sampler: were nested.
OLD_FLAT = {
    "steps": 2, "scheduler": "ddim", "spacing": None, "timesteps": [999, 499], "guidance": 0.0,
    "remat": True, "shared_noise": 0.0, "model": "shapes", "family": None, "dtype": "float32",
    "revision": None, "allow_pickle": False, "attention": "auto", "remat_policy": "auto",
    "prompt": "a red circle", "token": "circle", "pool": "none", "pairs": 8, "timestep": None,
    "unroll": False, "feature": "latents", "batch": 16, "seed": 0, "devices": -1,
    "param_sharding": "none", "out": "runs/grads"}


def test_a_flat_recorded_config_reads_back_as_the_nested_one():
    from jaxsteer.collect import CollectRun
    from jaxsteer.pool_images import PoolFromImagesRun
    cfg = config.parse(CollectRun, ["--model", "shapes", "--steps", "2", "--dtype", "float32",
                                    "--prompt", "a red circle", "--token", "circle", "--pairs",
                                    "8", "--timesteps", "999,499"], "jaxsteer collect")
    nested = config.to_dict(cfg)
    assert nested["model"]["name"] == "shapes" and nested["sampler"]["steps"] == 2
    assert recorded(OLD_FLAT) == nested
    assert recorded(nested) == nested                      # idempotent
    assert recorded({"k": 8, "seed": 0}) == {"k": 8, "seed": 0}   # no model: as it is
    pool = config.parse(PoolFromImagesRun, ["--prompt", "x"], "jaxsteer pool-from-images")
    old_pool = {"model": "tiny", "family": None, "dtype": "auto", "revision": None,
                "allow_pickle": False, "attention": "auto", "remat_policy": "auto",
                "images": ".", "prompt": "x", "batch": 16, "devices": -1, "out": "runs/pool"}
    assert recorded(old_pool) == config.to_dict(pool)     # no sampler section made up
