"""`jaxsteer bench groundtruth --groundtruth.world scenes` end to end on the CPU
(`python3 -m pytest -m slow tests/benchmarks/groundtruth/test_scenes_run.py`, ~65 s: not in CI).

No trained scenes model is bundled, so the run uses an untrained micro scenes pipeline (8 x 8
images, a 4 x 4 x 4 latent VAE, one UNet level), exported as `scenes.model.export` writes it and
loaded as a latent `sd` model: its numbers are noise, so the test checks structure, ranges, the
eight factors (categorical texture / background / dot included) and one compile per program.
It was in the GPU suite until its first H200 run (2026-12-02, `results/2026-12-02-s8/
gpu_suite_final/`): there XLA's compile of its gradient kernel crashed one worker (segfault),
the rerun asked for 0.9 of the GPU's memory (125.8 GiB) during the test and failed its
compile-count check, and six tests of test_commands.py errored in their pool fixtures
(`sample` out of device memory) beside it. Until
that is understood on the GPU it runs on the CPU only.
"""

import json
from pathlib import Path

import pytest

from jaxsteer.benchmarks.groundtruth import GroundTruthConfig, run, worlds
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig

pytestmark = pytest.mark.slow

# free factors: 5 (x, y, size, texture, dot), 7 (all but type), 8
PROMPTS = ("a red circle on grey", "here is a circle", "a shape")


def export_micro_scenes(folder: Path) -> Path:
    from jaxsteer.scenes.model import ScenesModelConfig, export, init_params
    cfg = ScenesModelConfig(image_size=8, vae_channels=(8, 8), vae_groups=8, channels=(32,),
                            attention_levels=(0,), heads=1, text_width=16, text_layers=1,
                            text_heads=1)
    return export(folder, cfg, init_params(cfg, 0), 0.75, dtype="float32")


def run_tiny_scenes(tmp: Path) -> dict:
    """A ci-scale run on the micro scenes model; checks the JSON; returns it."""
    from jaxsteer import sharding
    from jaxsteer.collect import KernelSpec, make_kernel
    from jaxsteer.models import load
    from jaxsteer.models.bundled import PRESETS
    from jaxsteer.sampling import SamplerConfig
    from jaxsteer.steer import make_renderer

    folder = export_micro_scenes(tmp / "micro-scenes")
    world = worlds.get("scenes")
    cfg = GroundTruthConfig(
        world="scenes", model=str(folder), scale="ci", prompts=PROMPTS,
        recovery_prompts=("a shape",), diversity_prompts=("a red circle on grey",), pool=4,
        pairs=8, batch=8, k=1, strengths=(-1.0, 1.0), seeds=2, sae_epochs=2, sae_batch=8,
        diversity_n=8, headline_diversity="turbo+dd1",
        complexity=ComplexityConfig(mle_k=3, n_boot=10, n_boot_spectral=0, pa_draws=2,
                                    vaease=VAEaseConfig(enabled=False)),
        out=tmp / "gt.json")
    summary = run(cfg)
    result = json.loads(cfg.out.read_text())
    assert result["config"]["world"] == "scenes" and "partial" not in result
    head = result["summary"]["headline"]
    assert head["method"]["world"] == "scenes" and head["method"]["turbo"] == "shapes-turbo"

    rec = result["recovery"]["a shape"]
    assert rec["free"] == list(world.factors)
    for method in ("pca", "sae"):
        for f in world.factors:
            assert 0.0 <= rec[method][f]["score"] <= 1.0 and 0.0 <= rec[method][f]["usable"] <= 1.0
    assert summary["recovery_pca"] is None or 0.0 <= summary["recovery_pca"] <= 1.0

    comp = result["complexity"]
    assert [(r["prompt"], r["n_free"]) for r in comp["prompts"]] == [
        (p, world.free_count(p)) for p in PROMPTS] == list(zip(PROMPTS, (5, 7, 8)))
    assert all(v is None or -1.0 <= v <= 1.0 for v in comp["spearman"].values())
    assert "convergence" in comp["prompts"][0]

    div = result["diversity"]["a red circle on grey"]
    assert div["free"] == ["x", "y", "size", "texture", "dot"]
    assert {"base", "turbo", "turbo+pca", "turbo+sae", "turbo+dd1"} <= set(div)
    for name in ("base", "turbo", "turbo+pca", "turbo+dd1"):
        e = div[name]
        assert e["fidelity"] is None or 0.0 <= e["fidelity"] <= 1.0
        for f in ("texture", "dot"):   # normalised entropy of a categorical factor
            assert e["spread"][f] is None or 0.0 <= e["spread"][f] <= 1.0 + 1e-9

    # One compiled renderer per preset and one base gradient kernel, whatever the prompt count.
    bundle, mesh = load(str(folder)), sharding.local_mesh()
    for preset in ("shapes", "shapes-turbo"):
        renderer = make_renderer(bundle.model, SamplerConfig(**PRESETS[preset]), mesh)
        assert renderer._cache_size() == 1, preset
    use_cfg = SamplerConfig(**PRESETS["shapes"]).use_cfg
    assert make_kernel(KernelSpec(bundle.model, pool=True, use_cfg=use_cfg),
                       mesh)._cache_size() == 1
    return result


def test_tiny_scenes_run_writes_every_section_and_compiles_once(tmp_path):
    run_tiny_scenes(tmp_path)
