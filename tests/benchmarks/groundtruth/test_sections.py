"""`groundtruth.sections`: the benchmark run end to end: a tiny run, a timestep mixture, and an
interrupted run resumed.

The runs use a micro shapes-architecture model (8 x 8 pixels, one UNet level, random weights)
exported to a pipeline folder: the bundled 32 x 32 model's gradient kernel takes about 100 s per
8 pairs on CPU with the suite's XLA optimisations off. The presets are the real ones, read from
`models.bundled.PRESETS`; its numbers are noise (random weights), so the tests check structure,
ranges and compilation counts, and the statistics are checked on planted data (test_stats.py).
"""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxsteer.benchmarks.groundtruth import HEADLINE, GroundTruthConfig, run, spearman
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig
from jaxsteer.errors import UserError
from tests.benchmarks.groundtruth.helpers import FREE_ALL


@pytest.fixture(scope="module")
def micro_folder(tmp_path_factory):
    from jaxsteer.shapes.model import ShapesModelConfig, export, init_params
    cfg = ShapesModelConfig(image_size=8, channels=(32,), attention_levels=(0,), heads=1,
                            text_width=16, text_layers=1, text_heads=1)
    return export(tmp_path_factory.mktemp("micro") / "shapes", cfg, init_params(cfg, 0),
                  unet_dtype="float32")


def test_tiny_run_writes_every_section_and_compiles_once(micro_folder, tmp_path, capsys):
    from jaxsteer import sharding
    from jaxsteer.collect import KernelSpec, make_kernel
    from jaxsteer.models import load
    from jaxsteer.models.bundled import PRESETS
    from jaxsteer.sampling import SamplerConfig
    from jaxsteer.steer import make_renderer

    prompts = ("a red circle in the middle", "a circle", "a shape")
    cfg = GroundTruthConfig(
        model=str(micro_folder), scale="ci", prompts=prompts, recovery_prompts=("a shape",),
        diversity_prompts=("a red circle in the middle",), pool=4, pairs=8, batch=8, k=1,
        strengths=(-1.0, 1.0), seeds=2, sae_epochs=2, sae_batch=8, diversity_n=8,
        diversity_directions="base",  # the turbo sampler's own gradient kernel: +12 s
        diversity_scales=(1e-6,),     # a variant that must sample what turbo does
        baseline_steps=(), headline_diversity="turbo+sae@1e-06",
        variants=False,               # checked on planted data (test_convergence)
        complexity=ComplexityConfig(mle_k=3, n_boot=10, n_boot_spectral=0, pa_draws=2,
                                    vaease=VAEaseConfig(enabled=False)),
        out=tmp_path / "gt.json")
    summary = run(cfg)
    printed = capsys.readouterr().out
    assert "factor recovery" in printed and "complexity" in printed and "diversity" in printed
    result = json.loads((tmp_path / "gt.json").read_text())
    assert summary["out"] == str(cfg.out)
    assert {"config", "recovery", "complexity", "diversity", "summary", "seconds",
            "presets"} <= set(result)

    rec = result["recovery"]["a shape"]
    assert rec["free"] == list(FREE_ALL)
    for method in ("pca", "sae"):
        for f in FREE_ALL:
            assert 0.0 <= rec[method][f]["score"] <= 1.0 and 0.0 <= rec[method][f]["usable"] <= 1.0
    assert 0.0 <= summary["recovery_pca"] <= 1.0
    # The numbers are noise (random weights), but they must be the statistics of the records.
    assert summary["recovery_pca"] == pytest.approx(
        np.mean([rec["pca"][f]["score"] for f in ("hue", "x", "y", "size")]))
    assert all(rec["pca"][f]["direction"] == 0 for f in FREE_ALL)   # k = 1: the only direction

    comp = result["complexity"]
    assert [(r["prompt"], r["n_free"]) for r in comp["prompts"]] == [
        ("a red circle in the middle", 1), ("a circle", 4), ("a shape", 5)]
    assert {"subspace_size", "parallel_analysis", "mle", "twonn"} <= set(comp["spearman"])
    assert all(v is None or -1.0 <= v <= 1.0 for v in comp["spearman"].values())
    n_free = [r["n_free"] for r in comp["prompts"]]
    for name, rho in comp["spearman"].items():
        values = [r["estimates"][name]["value"] for r in comp["prompts"]]
        assert rho == (None if spearman(values, n_free) is None
                       else pytest.approx(spearman(values, n_free))), name

    # The protocol's additions: the ranking with intervals, the tuning variants, convergence on
    # the first prompt (ci scale: one convergence prompt, 32 gradients, N = 16 and 32), and the
    # one named headline method.
    assert set(comp["ranking"]) == set(comp["spearman"])
    assert "variants" not in comp and "partial" not in result
    conv = comp["prompts"][0]["convergence"]
    assert [p["n"] for p in conv["points"]] == [16, 32] and conv["reference_n"] == 32
    assert conv["points"][-1]["spanned"] in (None, pytest.approx(1.0))
    assert all("convergence" not in r for r in comp["prompts"][1:])
    head = result["summary"]["headline"]
    assert {"recovery", "complexity", "spread_ratio", "fidelity"} <= set(head)
    assert head["recovery"] == summary["recovery_pca"]
    assert head["method"]["estimator"] == HEADLINE and head["method"]["timesteps"] == [500]
    assert head["method"]["turbo"] == "shapes-turbo"   # a model folder: the shared-noise stand-in
    chosen = result["summary"]["diversity_variants"]["turbo+sae@1e-06"]
    assert (head["spread_ratio"], head["fidelity"]) == (chosen["spread_ratio"], chosen["fidelity"])
    assert result["config"]["pairs"] == 8 and result["config"]["convergence_pairs"] == 32

    div = result["diversity"]["a red circle in the middle"]
    assert div["free"] == ["size"]
    assert {"base", "turbo", "turbo+pca"} <= set(div)
    for name in ("base", "turbo", "turbo+pca"):
        assert div[name]["fidelity"] is None or 0.0 <= div[name]["fidelity"] <= 1.0
    base, turbo = div["base"]["spread"]["size"], div["turbo"]["spread"]["size"]
    if base is not None and turbo is not None:   # the only free continuous factor: size
        assert div["base"]["ratio_vs_turbo"] == pytest.approx(max(base / max(turbo, 1e-6), 1e-6))

    # Offsets a millionth as long: the same seeds give turbo's own images (the variants differ
    # from one another only in the offsets' length).
    tiny = div["turbo+pca@1e-06"]
    assert tiny["fidelity"] == div["turbo"]["fidelity"] and tiny["usable"] == div["turbo"]["usable"]
    for f, v in div["turbo"]["spread"].items():
        assert tiny["spread"][f] == (None if v is None else pytest.approx(v, rel=1e-3, abs=1e-6))
    assert set(result["summary"]["diversity_variants"]) == {"turbo+pca", "turbo+pca@1e-06",
                                                            "turbo+sae", "turbo+sae@1e-06"}

    # One compiled renderer per preset and one gradient kernel, whatever the prompt count.
    bundle = load(str(micro_folder))
    mesh = sharding.local_mesh()
    for preset in ("shapes", "shapes-turbo"):
        renderer = make_renderer(bundle.model, SamplerConfig(**PRESETS[preset]), mesh)
        assert renderer._cache_size() == 1
    use_cfg = SamplerConfig(**PRESETS["shapes"]).use_cfg
    kernel = make_kernel(KernelSpec(bundle.model, pool=True, use_cfg=use_cfg), mesh)
    assert kernel._cache_size() == 1
    assert jax.device_count() == 8  # the suite's fake devices: the run was sharded


def test_a_timestep_mixture_interleaves_the_single_timestep_gradients(micro_folder):
    from jaxsteer import sharding
    from jaxsteer.benchmarks.groundtruth.sections import _Preset
    from jaxsteer.models import load

    bundle, mesh = load(str(micro_folder)), sharding.local_mesh()
    images = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)

    def grads(timesteps):
        cfg = GroundTruthConfig(model=str(micro_folder), scale="ci", timesteps=timesteps,
                                batch=8)
        base = _Preset(bundle, "shapes", cfg, mesh)
        inputs, _, _ = base.prepare("a red circle")
        return base.timesteps, base.gradients(inputs, images, jax.random.key(3), 5, 6)

    ts, mixed = grads((700, 300))
    first = grads((-1,))[0]                       # -1: the sampler's own first step
    assert ts == [700, 300] and grads(())[0] == first and first[0] > 700
    _, at700 = grads((700,))
    _, at300 = grads((300,))
    np.testing.assert_array_equal(mixed[0::2], at700[0::2])   # pair j at stratum j mod 2
    np.testing.assert_array_equal(mixed[1::2], at300[1::2])
    assert not np.allclose(at700, at300)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(micro_folder, tmp_path,
                                                                monkeypatch):
    from jaxsteer.benchmarks.groundtruth import sections

    cfg = GroundTruthConfig(
        model=str(micro_folder), scale="ci", prompts=("a red circle in the middle", "a circle"),
        recovery_prompts=(), diversity_prompts=("a circle",), pool=4, pairs=8, batch=8, k=1,
        seeds=1, sae_epochs=1, sae_batch=8, diversity_n=4, diversity_directions="base",
        variants=False, convergence_prompts=0,
        complexity=ComplexityConfig(mle_k=3, n_boot=4, n_boot_spectral=0, pa_draws=2,
                                    vaease=VAEaseConfig(enabled=False)),
        out=tmp_path / "whole.json")
    run(cfg)
    whole = json.loads(cfg.out.read_text())

    # Stopped in its second prompt (as a time limit stops it): the first prompt is on disk.
    stopped = dataclasses.replace(cfg, out=tmp_path / "resumed.json")
    record, calls = sections._complexity_record, []

    def stop_at_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return record(*args, **kwargs)
    monkeypatch.setattr(sections, "_complexity_record", stop_at_second)
    with pytest.raises(KeyboardInterrupt):
        run(stopped)
    partial = json.loads(stopped.out.read_text())
    assert partial["partial"] and [r["prompt"] for r in partial["complexity"]["prompts"]] \
        == calls[:1]
    with pytest.raises(UserError, match="other settings"):   # never mixed with other settings
        run(dataclasses.replace(stopped, pairs=16))

    # the time already spent carries over into the finished run's account (marked large here);
    # a file from before headline_diversity existed resumes too (it only picks the summary)
    older = {k: v for k, v in partial["config"].items() if k != "headline_diversity"}
    stopped.out.write_text(json.dumps({**partial, "config": older, "seconds": {
        k: 1000.0 for k in partial["seconds"]}}))
    redone = []
    monkeypatch.setattr(sections, "_complexity_record",
                        lambda *a, **k: redone.append(a[0]) or record(*a, **k))
    run(stopped)
    assert redone == calls[1:]        # only the prompt it was stopped in is computed again
    resumed = json.loads(stopped.out.read_text())
    for section in ("complexity", "diversity", "recovery", "summary"):
        assert resumed[section] == whole[section], section
    assert "partial" not in resumed
    assert all(resumed["seconds"][k] >= 1000.0 for k in partial["seconds"])

