"""Test-wide JAX set-up and shared fixtures.

8 fake CPU devices (sharded == single-device tests), rank promotion raises, the hub is off
(no test downloads anything), and a persistent compile cache for the session so identical
programs compile once. Tiny models are built by the tests themselves.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
warnings.filterwarnings("ignore", message="Flax classes are deprecated")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_threefry_partitionable", True)


def accelerator_run(config) -> bool:
    """Whether this run selects the accelerator suite (`pytest -m gpu`)."""
    return "gpu" in (config.getoption("markexpr") or "").replace("not gpu", "")


def pytest_configure(config):
    """CPU for the CI suite; the real backend, with real optimisation, for `pytest -m gpu`.

    Runs before any test touches a device, so the platform choice still takes effect.
    """
    if accelerator_run(config):
        # xdist workers share one GPU: each takes under its share of the memory. The controller
        # of `-n N` sets nothing: a worker it starts (or restarts after a crash) would inherit
        # its value, the whole 0.9 (seen on the H200, 2026-12-02: a restarted worker asked for
        # 125.8 GiB and starved the others).
        if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(config.option, "numprocesses",
                                                                None):
            workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
            os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / workers:.3f}")
        return
    if "JAX_PLATFORMS" not in os.environ:
        jax.config.update("jax_platforms", "cpu")
    # CPU compiles of even tiny UNets dominate the suite's time; tests check numbers, not speed.
    jax.config.update("jax_disable_most_optimizations", True)
    _fast_cpu_compiles()
    if not os.environ.get("PYTEST_XDIST_WORKER") and _runs(config, "tests/test_dependencies.py"):
        _start_pip_resolutions(config)


# XLA:CPU's MLIR fusion emitters took 4.0-5.4 s of a tiny-SD gradient kernel's 5-7 s first
# call; without them, 1.9-2.4 s, the same gradients (measured 2026-12-03, jax 0.10.2, one core).
# The kernels then run a little slower (0.068-0.086 s a call against 0.062-0.073 s), which
# compile-bound tests do not feel. XLA aborts on a
# flag it does not know, so the controller tries it in a child first; workers inherit the result.
FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"
FAST_COMPILE_PROBED = "JAXSTEER_TEST_FAST_COMPILE_PROBED"


def _fast_cpu_compiles():
    if os.environ.get(FAST_COMPILE_PROBED):
        return
    flags = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()
    probe = "import jax; jax.config.update('jax_platforms', 'cpu'); jax.numpy.zeros(1).sum()"
    try:
        known = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120,
                               env={**os.environ, "XLA_FLAGS": flags}).returncode == 0
    except subprocess.TimeoutExpired:
        known = False
    if known:
        os.environ["XLA_FLAGS"] = flags
    os.environ[FAST_COMPILE_PROBED] = "1"


def _runs(config, test_file: str) -> bool:
    """Whether the session's paths include ``test_file`` (none given: the whole suite)."""
    target = (Path(config.rootpath) / test_file).resolve()
    paths = [Path(a.split("::")[0]).resolve() for a in config.args] or [Path(config.rootpath)]
    return any(p == target or p in target.parents for p in paths)


def _start_pip_resolutions(config):
    """test_dependencies.py's pip resolutions, network-bound, start now in the background (their
    folder is passed to the workers through the environment), so the worker that runs the test
    reads their reports instead of idling for ~50 s; unfinished ones are stopped at the end."""
    from tests import pip_resolution
    folder = Path(tempfile.mkdtemp(prefix="jaxsteer-pip-"))
    os.environ[pip_resolution.EARLY_ENV] = str(folder)
    procs = [pip_resolution.start(folder, name) for name in pip_resolution.RESOLUTIONS]
    def stop():
        for p in procs:
            pip_resolution.stop(p)
        shutil.rmtree(folder, ignore_errors=True)
    config.add_cleanup(stop)


# The files that take the longest on a 2-core CPU (half a minute to a minute and a half each),
# longest first (measured with `--durations=0`, summed per file): they start first, so
# `-n 2 --dist loadfile` does not end with one of them running alone. pyproject's
# `--no-loadscope-reorder` keeps this order: xdist would otherwise start the files with the
# most tests first, and the one-test files (README quick start, pip resolution) last.
LONGEST_FIRST = ("tests/test_collect.py", "tests/test_cli_contract.py", "tests/test_survey.py",
                 "tests/benchmarks/groundtruth/test_sections.py", "tests/test_exported.py",
                 "tests/complexity/test_estimate.py", "tests/shapes/test_train.py",
                 "tests/test_readme.py", "tests/models/test_attention.py",
                 "tests/test_sharding_params.py", "tests/models/nn/test_unet.py",
                 "tests/models/nn/test_flux.py", "tests/models/test_flux.py",
                 "tests/models/nn/test_torch_fixtures.py", "tests/test_dependencies.py",
                 "tests/test_steer.py", "tests/test_sampling.py")


def pytest_collection_modifyitems(config, items):
    """Longest files first; the rest keep their order (a stable sort: every xdist worker
    collects the same order, as it must)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keeps the suite's caches (tiny model, XLA) out of the user's home. The XLA cache is one
    folder for every xdist worker (the same tiny programs compile in several files); the rest
    stays per worker. JAX writes an entry once per key, in place: a worker that reads one while
    it is being written gets JAX's "Error reading persistent compilation cache entry" warning
    and compiles the program itself."""
    cache = tmp_path_factory.mktemp("jaxsteer-cache")
    base = tmp_path_factory.getbasetemp()
    xla = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "xla-shared"
    xla.mkdir(exist_ok=True)
    (cache / "xla").symlink_to(xla)   # the CLI's cache is $JAXSTEER_CACHE/xla
    os.environ["JAXSTEER_CACHE"] = str(cache)
    jax.config.update("jax_compilation_cache_dir", str(xla))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    yield


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny random SD pipeline (with VAE) in diffusers' folder layout."""
    from jaxsteer.models.tiny import build_tiny_sd
    return build_tiny_sd(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_folder):
    from jaxsteer.models import load
    return load(str(tiny_folder))


@pytest.fixture(scope="session")
def micro_shapes(tmp_path_factory):
    """The smallest shapes-world pipeline (8 x 8 pixels, one UNet level), random weights: a
    teacher for `distill-shapes` in tests and the CLI smoke run (one compiled step for both)."""
    from jaxsteer.shapes.model import ShapesModelConfig, export, init_params
    cfg = ShapesModelConfig(image_size=8, channels=(32,), attention_levels=(0,), heads=1,
                            text_width=16, text_layers=1, text_heads=1)
    return export(tmp_path_factory.mktemp("micro") / "shapes", cfg, init_params(cfg, 0),
                  unet_dtype="float32")


@pytest.fixture(scope="session")
def micro_scenes(tmp_path_factory):
    """The smallest scenes pipeline (8 x 8 images, a VAE of one level: 8 x 8 x 4 latents, one
    UNet level without attention), random weights: the CLI smoke run's train-scenes size; a
    latent teacher for `distill-shapes` in tests."""
    from jaxsteer.scenes.model import ScenesModelConfig, export, init_params
    cfg = ScenesModelConfig(image_size=8, vae_channels=(8,), vae_groups=8, channels=(32,),
                            attention_levels=(), heads=1, text_width=16, text_layers=1,
                            text_heads=1)
    return export(tmp_path_factory.mktemp("micro") / "scenes", cfg, init_params(cfg, 0), 1.0,
                  "float32")
