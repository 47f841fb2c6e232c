"""The one entry point: `jaxsteer <command> [flags]`.

The only place with global side effects: warning filters, JAX flags, the persistent compilation
cache, distributed initialisation. Each command is ``run(cfg)`` in its own module, with a typed
config that `jaxsteer.config.parse` fills from ``--config`` YAML and flags.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxsteer import config
from jaxsteer.errors import OOM_ADVICE, UserError, is_device_oom


# Each loader imports its command's module only when that command runs (see COMMANDS): lazy on
# purpose, so `jaxsteer --help` and a bad flag answer without importing them.
def _sample():
    from jaxsteer import sample
    return sample.SampleRun, sample.run


def _collect():
    from jaxsteer import collect
    return collect.CollectRun, collect.run


def _decompose():
    from jaxsteer.decompose import run
    return run.DecomposeRun, run.run


def _steer():
    from jaxsteer import steer
    return steer.SteerRun, steer.run


def _diversify():
    from jaxsteer import diversity
    return diversity.DiversifyRun, diversity.run


def _survey():
    from jaxsteer import survey
    return survey.SurveyRun, survey.run


def _report():
    from jaxsteer import report
    return report.ReportRun, report.run


def _train_shapes():
    from jaxsteer.shapes import train
    return train.TrainShapesRun, train.run


def _train_scenes():
    from jaxsteer.scenes import train
    return train.TrainScenesRun, train.command


def _distill_shapes():
    from jaxsteer.distill import run
    return run.DistillRun, run.run


def _survey_merge():
    from jaxsteer import survey_summary
    return survey_summary.MergeRun, survey_summary.run_merge


def _bench():  # a command of commands: `jaxsteer bench WHAT` (the class comes with WHAT)
    from jaxsteer import bench
    return None, bench.select


def _export():
    from jaxsteer import interop
    return interop.ExportRun, interop.run


def _pool_from_images():
    from jaxsteer import pool_images
    return pool_images.PoolFromImagesRun, pool_images.run


def _env():
    from jaxsteer import environment
    return environment.EnvRun, environment.run


def _demo():
    from jaxsteer import demo
    return demo.DemoRun, demo.run


# name -> (one-line description, loader of (config class, run function)); loaders import lazily
# so `jaxsteer --help` stays fast.
COMMANDS: dict[str, tuple[str, Callable[[], tuple[type, Callable]]]] = {
    "env": ("backend, devices, memory, versions and resolved defaults of this machine", _env),
    "demo": ("the whole method on the bundled model, offline", _demo),
    "sample": ("generate a pool of samples (latents) for a prompt", _sample),
    "collect": ("collect per-pair gradients w.r.t. a word's token rows", _collect),
    "decompose": ("PCA or sparse autoencoder of a gradient store", _decompose),
    "steer": ("image grids along directions of a DirectionSet", _steer),
    "diversify": ("diversity with and without random steering, on the same seeds", _diversify),
    "survey": ("concept complexity of every prompt of a file, resumable, multi-host", _survey),
    "survey-merge": ("merge every host's survey records into the summary", _survey_merge),
    "export": ("a DirectionSet as plain safetensors, for PyTorch pipelines", _export),
    "pool-from-images": ("a folder of images as a pool, through the model's autoencoder",
                         _pool_from_images),
    "report": ("a self-contained HTML page of a run folder", _report),
    "train-shapes": ("train the bundled shapes model (GPU/TPU)", _train_shapes),
    "train-scenes": ("train the scenes model: VAE, then latent UNet + text encoder (GPU/TPU)",
                     _train_scenes),
    "distill-shapes": ("distil the shapes or scenes model into a few-step student (GPU/TPU)",
                       _distill_shapes),
    "bench": ("speed and memory benchmarks (prints a table)", _bench),
}


def _quiet_libraries() -> None:
    """Keeps library log noise (transformers' tokenizer notices, absl, orbax) out of the
    terminal."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("transformers", "absl", "jax._src.xla_bridge", "orbax"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog
        tlog.set_verbosity_error()
    except ImportError:
        pass


def _setup_jax() -> None:
    import jax
    cache = Path(os.environ.get("JAXSTEER_CACHE", Path.home() / ".cache" / "jaxsteer")) / "xla"
    # Compiles of a diffusion UNet take minutes; the persistent cache makes the next run seconds.
    # Which compiles it keeps (JAX's default: those over 1 s) stays the user's setting.
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_threefry_partitionable", True)
    if os.environ.get("JAXSTEER_COORDINATOR"):  # explicit: CPU processes on one machine, GPUs
        jax.distributed.initialize(os.environ["JAXSTEER_COORDINATOR"],
                                   int(os.environ["JAXSTEER_NUM_PROCESSES"]),
                                   int(os.environ["JAXSTEER_PROCESS_ID"]))
    elif os.environ.get("JAXSTEER_DISTRIBUTED") == "1":  # TPU pod slices detect everything
        jax.distributed.initialize()
    if jax.process_count() > 1:  # one hello line per host, where it helps to find a lost host
        print(f"jaxsteer: process {jax.process_index()} of {jax.process_count()}, "
              f"{jax.local_device_count()} local / {jax.device_count()} global "
              f"{jax.devices()[0].platform} devices", file=sys.stderr)


def _usage() -> str:
    lines = ["usage: jaxsteer <command> [--config FILE.yaml] [flags]", "", "commands:"]
    for name, (description, _) in COMMANDS.items():
        lines.append(f"  {name:<12} {description}")
    lines += ["", "`jaxsteer <command> --help` lists a command's flags."]
    return "\n".join(lines)


def _print_summary(result: Any) -> None:
    if isinstance(result, dict):
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("_")}, indent=2,
                         default=str))


def _presets_for(cls: type):
    """Sampler defaults for commands that sample (explicit flags and YAML win): a bundled
    model's settings, and over those what the run's inputs say (``cls.input_presets``: the
    sampler settings of `collect`'s pool), both SamplerConfig fields, set as ``sampler.*``."""
    if "sampler" not in {f.name for f in dataclasses.fields(cls)}:
        return None
    from jaxsteer.models.bundled import PRESETS  # lazy: it imports every model family
    from_inputs = getattr(cls, "input_presets", None)

    def presets(values: dict) -> dict:
        settings = {**PRESETS.get(str(values.get("model.name")), {}),
                    **(from_inputs(values) if from_inputs else {})}
        return {f"sampler.{k}": v for k, v in settings.items()}
    return presets


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_libraries()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"jaxsteer: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        description, loader = COMMANDS[name]
        cls, run = loader()
        prog = f"jaxsteer {name}"
        if cls is None:  # `run` picks the sub-command's config class and run from the argv
            cls, run, rest, prog = run(rest, prog)
        cfg = config.parse(cls, rest, prog=prog, description=description,
                           presets=_presets_for(cls))
        _setup_jax()
        result = run(cfg)
    except UserError as e:
        print(f"jaxsteer {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\njaxsteer {name}: interrupted; finished shards are kept, rerun the same command "
              "to resume", file=sys.stderr)
        return 130
    except Exception as e:
        if not is_device_oom(e):
            raise   # a bug: keep the traceback
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        print(f"jaxsteer {name}: error: the accelerator ran out of memory ({first}); "
              f"{OOM_ADVICE}. Finished shards are kept: rerun to resume.", file=sys.stderr)
        return 2
    _print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
