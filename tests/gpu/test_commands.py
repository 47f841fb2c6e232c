"""Every command end to end on the accelerator (`python3 -m pytest -m gpu`; skipped on the CPU).

CI has no accelerator, so placement, memory and kernel bugs show only here: each CLI command
runs in-process on the bundled `shapes` model and on `tiny` (sd) and `tiny-xl` (sdxl), with the
backend's own defaults (bf16, cuDNN attention, the matmuls remat policy on NVIDIA GPUs).
"""

import json

import jax
import numpy as np
import pytest

from jaxsteer import cli, survey

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(jax.default_backend() == "cpu", reason="needs an accelerator")]

# model -> (prompt, a one-row word, a several-row word, extra sampler flags)
MODELS = {
    "shapes": ("a red circle", "circle", "red circle", ["--steps", "4"]),
    "tiny": ("a picture of a monster", "monster", "monster", ["--steps", "2"]),
    "tiny-xl": ("a picture of a monster", "monster", "monster", ["--steps", "2"]),
}


def ok(argv: list[str]) -> None:
    assert cli.main(argv) == 0, argv


@pytest.fixture(scope="module", params=list(MODELS))
def run(request, tmp_path_factory):
    """sample -> collect (pool) -> decompose pca and sae, for one model; the folder and names."""
    model = request.param
    prompt, word, _, flags = MODELS[model]
    out = tmp_path_factory.mktemp(model)
    common = ["--model", model, *flags]
    ok(["sample", *common, "--prompt", prompt, "--n", "16", "--batch", "8",
        "--out", str(out / "pool")])
    ok(["collect", *common, "--prompt", prompt, "--token", word, "--pool", str(out / "pool"),
        "--pairs", "24", "--batch", "8", "--out", str(out / "grads")])
    ok(["decompose", str(out / "grads"), "--method", "pca", "--k", "4"])
    ok(["decompose", str(out / "grads"), "--method", "sae", "--k", "2", "--sae.epochs", "2"])
    return model, out, common


def test_collect_on_a_pool_gives_finite_gradients(run):
    from jaxsteer.store import read_gradients
    model, out, _ = run
    grads, _ = read_gradients(out / "grads")
    assert grads.shape[0] == 24 and np.isfinite(grads).all() and np.abs(grads).max() > 0


@pytest.mark.parametrize("model", list(MODELS))
def test_pool_free_collect_with_several_token_rows(model, tmp_path):
    from jaxsteer.store import read_gradients
    prompt, _, words, flags = MODELS[model]
    ok(["collect", "--model", model, *flags, "--prompt", prompt, "--token", words,
        "--pool", "none", "--pairs", "8", "--batch", "4", "--out", str(tmp_path / "g")])
    grads, manifest = read_gradients(tmp_path / "g")
    assert grads.shape[:2] == (8, len(manifest["token_rows"])) and grads.shape[1] >= 2
    assert np.isfinite(grads).all()


def test_steer_with_compose_diversify_and_report(run):
    model, out, common = run
    pca = out / "grads" / "directions_pca"
    ok(["steer", str(pca), *common, "--indices", "0,1", "--alphas", "-0.5:0.5:3",
        "--seeds", "0", "--compose", f"{out / 'grads' / 'directions_sae'}:0:0.5",
        "--out", str(out / "steer")])
    assert len(list((out / "steer").glob("direction_*.png"))) == 2
    ok(["diversify", str(pca), *common, "--n", "8", "--relative", "--strength", "0.2,0.5",
        "--out", str(out / "div")])
    assert set(json.loads((out / "div" / "diversity.json").read_text())) == {"with", "without"}
    ok(["report", str(out)])
    assert (out / "report.html").stat().st_size > 1000


def test_demo_writes_its_report(tmp_path):
    ok(["demo", "--pool", "16", "--pairs", "32", "--out", str(tmp_path / "demo")])
    assert (tmp_path / "demo" / "report.html").exists()


@pytest.mark.parametrize("model", ["shapes", "tiny"])
def test_survey_resumes_after_a_kill(model, tmp_path, monkeypatch):
    prompts = tmp_path / "prompts.txt"
    text = ("a red circle\na blue square\na circle\n" if model == "shapes"
            else "a red cat\na big dog\na tall fox\n")
    prompts.write_text(text)
    args = ["survey", str(prompts), "--model", model, *MODELS[model][3], "--pairs", "32",
            "--batch", "16", "--pool", "8", "--complexity.vaease.enabled", "false",
            "--out", str(tmp_path / "s")]
    real, calls = survey.append_line, {"n": 0}

    def dying(path, obj):
        if path.name.startswith("records") and calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += path.name.startswith("records")
        real(path, obj)

    monkeypatch.setattr(survey, "append_line", dying)
    assert cli.main(args) == 130
    monkeypatch.undo()
    ok(args)
    recs = [r for p in (tmp_path / "s").glob("records-*.jsonl") for r in survey.read_records(p)]
    assert sorted(r["line"] for r in recs) == [1, 2, 3]


def test_bench_groundtruth_at_a_small_scale(tmp_path):
    ok(["bench", "groundtruth", "--groundtruth.scale", "ci",
        "--groundtruth.prompts", "a red circle,a circle,a shape",
        "--groundtruth.recovery-prompts", "a shape",
        "--groundtruth.diversity-prompts", "a red circle", "--groundtruth.pool", "16",
        "--groundtruth.pairs", "32", "--groundtruth.seeds", "2",
        "--groundtruth.sae-epochs", "2", "--groundtruth.diversity-n", "8",
        "--groundtruth.complexity.vaease.enabled", "false",
        "--groundtruth.out", str(tmp_path / "gt.json")])
    result = json.loads((tmp_path / "gt.json").read_text())
    assert {"recovery", "complexity", "diversity", "summary"} <= set(result)
    assert "headline" in result["summary"] and result["config"]["convergence_pairs"] == 32
    # the bundled model's collapse is its distilled student, beside diversity distillation
    assert result["config"]["turbo"] == "shapes-student"
    assert {"turbo+sae@0.25", "turbo+dd1"} <= set(result["summary"]["diversity_variants"])


def test_bench_throughput_on_tiny(tmp_path):
    ok(["bench", "throughput", "--configs", "tiny-1", "--min-time-s", "0.2",
        "--out", str(tmp_path / "b.json")])
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert rows and all(r["status"] == "ok" for r in rows), rows


def test_env_names_the_accelerator(capsys):
    ok(["env"])
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == jax.default_backend() != "cpu"
    assert result["devices"][0]["memory_gib"] > 1


def test_export_and_pool_from_images(run):
    from PIL import Image

    from jaxsteer import interop
    model, out, common = run
    ok(["export", str(out / "grads"), "--out", str(out / "dirs.safetensors")])
    assert interop.read_exported(out / "dirs.safetensors")[1]["model"] == model
    images = out / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
    prompt, word, _, flags = MODELS[model]
    ok(["pool-from-images", str(images), "--model", model, "--prompt", prompt,
        "--out", str(out / "imgpool")])
    ok(["collect", *common, "--prompt", prompt, "--token", word, "--pool", str(out / "imgpool"),
        "--pairs", "8", "--batch", "8", "--out", str(out / "imggrads")])
