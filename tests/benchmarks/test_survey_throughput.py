"""The survey throughput bench on a tiny architecture: the survey's per-prompt path, timed."""

import json

import pytest

from jaxsteer.benchmarks.survey_throughput import PHASES, TPU_SYSTEMS, bench_survey, format_survey
from jaxsteer.complexity import ComplexityConfig, VAEaseConfig

FAST = ComplexityConfig(n_boot_spectral=0, n_boot=10, pa_draws=4, mle_k=3,
                        vaease=VAEaseConfig(enabled=False))


@pytest.mark.slow  # ~25 s of CPU compiles; CI's budget is tight and tests/test_survey.py covers the
# survey path itself (run it with `pytest -m slow`)
def test_survey_bench_times_the_survey_path_and_projects(tmp_path):
    out = tmp_path / "survey.json"
    # Latents 4x4, one device, no remat: the smallest program that still runs the whole path.
    res = bench_survey("tiny-1", pairs=8, prompts=1, batch=8, dtype="float32", attention="xla",
                       remat=False, devices=1, complexity=FAST, model_flops=False,
                       sample_size=4, out=out, log=lambda line: None)
    assert json.loads(out.read_text())["prompts_per_hour"] == pytest.approx(res["prompts_per_hour"])
    assert [r["warmup"] for r in res["timings"]] == [True, False]
    assert res["pool_mode"] == "pool-free" and res["latent_shape"] == [4, 4, 4]
    mean = res["per_prompt_s"]
    assert mean["collect"] > 0 and mean["estimate"] > 0 and mean["other"] >= 0
    assert sum(mean[k] for k in PHASES) == pytest.approx(mean["total"])
    assert res["prompts_per_hour"] == pytest.approx(3600 / mean["total"])
    assert res["compiles_during_timed_prompts"] == []  # one program for every prompt
    assert res["timings"][1]["subspace_size"] >= 1
    # The projection: collect scaled by aggregate peak FLOP/s, estimate by the chip count.
    for name, system in TPU_SYSTEMS.items():
        p = res["projection"][name]
        aggregate = system["chips"] * system["peak_tflops_per_chip"]
        assert p["collect_s_per_prompt"] == pytest.approx(mean["collect"] * 989.0 / aggregate)
        assert p["estimate_s_per_prompt"] == pytest.approx(mean["estimate"] / system["chips"])
        assert p["hours"] <= p["hours_estimates_one_chip_per_host"]
    assert res["projection"]["v5p-64"]["hours"] < res["projection"]["v5e-8"]["hours"]
    text = format_survey(res)
    assert "PROJECTION (on paper, not measured) of 10,000 prompts" in text
    assert "v5e-8" in text and "v5p-64" in text and "mean (timed)" in text
