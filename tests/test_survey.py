"""Surveys: bad lines, kill-and-resume, one compile per survey, two processes on localhost."""

import json
import os
import socket
import subprocess
import sys

import jax
import pytest

from jaxsteer import cli, survey

# Last words of equal token length (3 characters for the tiny character tokenizer): one program.
PROMPTS = "a red cat\n\na big dog\ta\n\xff\xfe\na tall fox\na drawing of a cat\tbat\none blue owl\n"
FAST = ["--model", "tiny", "--steps", "2", "--pairs", "8", "--batch", "8", "--pool", "8",
        "--devices", "1", "--complexity.n-boot-spectral", "0", "--complexity.n-boot", "10",
        "--complexity.pa-draws", "4", "--complexity.mle-k", "3",
        "--complexity.vaease.enabled", "false"]


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(PROMPTS.encode("latin-1"))
    return path


def lines_of(out):
    recs = [r for p in sorted(out.glob("records-*.jsonl")) for r in survey.read_records(p)]
    return sorted(r["line"] for r in recs), recs


def test_survey_records_bad_lines_and_resumes_after_a_kill(prompts, tmp_path, monkeypatch,
                                                            capsys):
    out = tmp_path / "s"
    real = survey.append_line
    calls = {"records": 0}

    def dying(path, obj):
        if path.name.startswith("records"):
            if calls["records"] == 2:
                with open(path, "a") as f:
                    f.write('{"line": 7, "prom')  # a torn record, as a kill mid-write leaves
                raise KeyboardInterrupt
            calls["records"] += 1
        real(path, obj)

    monkeypatch.setattr(survey, "append_line", dying)
    assert cli.main(["survey", str(prompts), *FAST, "--out", str(out)]) == 130
    monkeypatch.undo()
    assert lines_of(out)[0] == [1, 3]
    capsys.readouterr()
    assert cli.main(["survey", str(prompts), *FAST, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    done, recs = lines_of(out)
    assert done == [1, 3, 5, 7]                     # exactly one record per good prompt
    # The summary's count is the errors file's, and the text says where the lines are.
    summary = json.loads(printed[printed.index("{"):])
    assert summary["errors"] == 3
    assert f"3 prompt line(s) skipped, listed in {out / 'errors-000.jsonl'}" in printed
    errors = {e["line"]: e["error"] for e in survey.read_records(out / "errors-000.jsonl")}
    assert set(errors) == {2, 4, 6}
    assert "empty" in errors[2] and "UTF-8" in errors[4] and "not a word" in errors[6]
    rec = recs[0]
    assert rec["token"] == "cat" and rec["estimates"]["subspace_size"]["value"] >= 1
    assert "collect" in rec["seconds"] and "prepare" in rec["seconds"]
    # The head comes from estimate_all's own SVD: its first ratio is the subspace size's top one.
    head = rec["spectrum_head"]
    assert len(head) >= 1 and "explained_variance_ratio" not in rec["estimates"]
    assert head[0] == pytest.approx(rec["estimates"]["subspace_size"]["top_ratio"], abs=1e-6)
    assert head == sorted(head, reverse=True) and sum(head) <= 1 + 1e-5
    assert (out / "summary.csv").read_text().count("\n") == 5
    assert (out / "summary.png").stat().st_size > 1000


def test_one_compiled_collector_serves_every_prompt(prompts, tmp_path):
    # Warm up with a one-prompt survey (a 3-token word, rows padded to 4), then count the
    # kernel and pool-generator compiles of a survey whose words span 3 and 2 tokens (2 alone
    # would be a bucket of its own, which no earlier test compiled): every prompt is padded to
    # the survey's one row bucket, so none compiles again. (The estimators see
    # [pairs, rows * d] and do compile once for the new row count.)
    first = tmp_path / "one.txt"
    first.write_text("a red cat\n")
    assert cli.main(["survey", str(first), *FAST, "--out", str(tmp_path / "warm")]) == 0
    compiles = []

    def listener(event, secs, fun_name="", **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        good = tmp_path / "good.txt"
        good.write_text("a big dog\na tall ox\none blue owl\na wet rat\n")
        assert cli.main(["survey", str(good), *FAST, "--out", str(tmp_path / "four")]) == 0
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    done, recs = lines_of(tmp_path / "four")
    assert done == [1, 2, 3, 4]
    assert sorted({len(r["token_rows"]) for r in recs}) == [2, 3]
    assert [f for f in compiles if f in ("jit(pair_grads)", "jit(gen)")] == []


@pytest.mark.multiprocess
def test_two_processes_split_the_prompts_and_merge(prompts, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "mp"
    env = dict(os.environ, JAXSTEER_COORDINATOR=f"127.0.0.1:{port}", JAXSTEER_NUM_PROCESSES="2",
               JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1", HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "jaxsteer.cli", "survey", str(prompts),
                               *FAST, "--out", str(out)], env=env | {"JAXSTEER_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = [p.communicate(timeout=400) for p in procs]
    for p, (_, e) in zip(procs, results):
        assert p.returncode == 0, e[-2000:]
    parts = {p.name: [r["line"] for r in survey.read_records(p)]
             for p in sorted(out.glob("records-*.jsonl"))}
    # Good lines 1, 3, 5, 6, 7 alternate between hosts; line 6 (no such word) is an error of host 1.
    assert parts == {"records-000.jsonl": [1, 5, 7], "records-001.jsonl": [3]}
    assert "not a word" in (out / "errors-001.jsonl").read_text()
    assert (out / "summary.csv").read_text().count("\n") == 5
    summary = json.loads(results[0][0][results[0][0].index("{"):])
    assert summary["records"] == 4


def test_a_second_survey_on_the_same_folder_is_refused(prompts, tmp_path, capsys):
    from jaxsteer import runlock
    out = tmp_path / "s"
    with runlock.hold(out, ".jaxsteer-survey-000.lock"):
        assert cli.main(["survey", str(prompts), *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {os.getpid()}" in err[0] and "another jaxsteer run" in err[0]
    assert [p.name for p in out.iterdir()] == [".jaxsteer-survey-000.lock"]


def test_adaptive_rounds_double_up_to_the_cap():
    cfg = survey.SurveyRun(pairs=8, ci_width=0.5, max_pairs=40)
    assert cfg.pair_counts() == (8, 16, 32, 40)
    with pytest.raises(survey.UserError, match="two rounds"):
        survey.SurveyRun(pairs=8, ci_width=0.5, max_pairs=12)
    assert survey.SurveyRun(pairs=8).pair_counts() == (8,)
    for bad in ({"ci_width": -1.0}, {"ci_width": 1.0, "max_pairs": 4},
                {"ci_width": 1.0, "ci_estimator": "ev_ratio"},
                {"timestep": 500}):   # a timestep noises a pool image: pool-free has none
        with pytest.raises(survey.UserError):
            survey.SurveyRun(pairs=8, **bad)
    # parallel analysis (the benchmark's headline) has an interval once its resamples are on
    ok = survey.SurveyRun(pairs=8, ci_width=1.0, ci_estimator="parallel_analysis",
                          complexity=survey.ComplexityConfig(n_boot_pa=2))
    assert ok.pair_counts() == (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    with pytest.raises(survey.UserError, match="--complexity.n-boot-pa >= 2"):
        survey.SurveyRun(pairs=8, ci_width=1.0, ci_estimator="parallel_analysis")


def test_adaptive_survey_extends_a_prompt_until_its_interval_is_narrow(tmp_path):
    # An unreachable width collects up to --max-pairs in rounds 8, 16; the record then holds
    # exactly what a fixed 16-pair survey records (pair j depends only on the key and j), and a
    # width any interval and any change meet stops after the second round (the first with a
    # round to compare with), below a --max-pairs of 32.
    one = tmp_path / "one.txt"
    one.write_text("a red cat\n")
    at = FAST.index("--pairs")
    fast = FAST[:at] + FAST[at + 2:] + ["--keep-gradients", "true"]
    adaptive = ["--ci-estimator", "mle", "--max-pairs", "16", "--pairs", "8"]
    runs = {"tight": [*adaptive, "--ci-width", "1e-9"], "fixed": ["--pairs", "16"],
            "loose": [*adaptive, "--ci-width", "1e9", "--max-pairs", "32"]}
    recs = {}
    for name, extra in runs.items():
        assert cli.main(["survey", str(one), *fast, *extra, "--out", str(tmp_path / name)]) == 0
        recs[name] = lines_of(tmp_path / name)[1][0]
    tight, fixed = recs["tight"], recs["fixed"]
    assert [r["pairs"] for r in tight["adaptive"]["rounds"]] == [8, 16]
    assert tight["pairs"] == 16 and not tight["adaptive"]["reached"]
    assert tight["estimates"] == fixed["estimates"]
    grads = {n: survey.records.load_arrays(tmp_path / n / "grads" / "0000001.safetensors")
             for n in ("tight", "fixed")}
    assert (grads["tight"]["grads"] == grads["fixed"]["grads"]).all()
    loose = recs["loose"]
    assert loose["pairs"] == 16 and loose["adaptive"]["reached"]
    assert [r["pairs"] for r in loose["adaptive"]["rounds"]] == [8, 16]
    assert loose["estimates"] == fixed["estimates"]


def test_the_adaptive_stop_needs_a_narrow_interval_and_a_settled_value():
    def rounds(*pairs_value_width):
        return [{"pairs": n, "value": v, "ci_width": w} for n, v, w in pairs_value_width]
    assert not survey.converged(rounds((32, 8.0, 0.0)), 2.0)          # nothing to compare yet
    assert survey.converged(rounds((32, 8.0, 2.0), (64, 7.0, 2.0)), 2.0)
    assert not survey.converged(rounds((32, 8.0, 2.0), (64, 7.0, 3.0)), 2.0)   # too wide
    # a narrow interval on an estimate still growing with N (rank-limited at 32 gradients)
    assert not survey.converged(rounds((32, 31.0, 1.0), (64, 55.0, 1.0)), 2.0)


def test_survey_runs_the_benchmarks_method_rows_timestep_and_normalisation(tmp_path):
    """--rows all differentiates every embedding row, --timestep moves the noise level of the
    pool pairs, and --normalize l2 is applied to the gradients before every estimate."""
    import jax.numpy as jnp

    from jaxsteer.complexity import ComplexityConfig, VAEaseConfig, estimate_all, normalize_rows

    one = tmp_path / "one.txt"
    one.write_text("a red cat\n")
    runs = {"t100_l2": ["--timestep", "100", "--normalize", "l2"], "first_raw": []}
    recs, grads = {}, {}
    for name, extra in runs.items():
        assert cli.main(["survey", str(one), *FAST, "--rows", "all", "--keep-gradients", "true",
                         *extra, "--out", str(tmp_path / name)]) == 0
        recs[name] = lines_of(tmp_path / name)[1][0]
        grads[name] = survey.records.load_arrays(
            tmp_path / name / "grads" / "0000001.safetensors")["grads"]
    assert recs["t100_l2"]["token_rows"] == list(range(77))   # the tiny models' CLIP length
    assert grads["t100_l2"].shape == grads["first_raw"].shape and grads["t100_l2"].shape[0] == 8
    assert not jax.numpy.allclose(grads["t100_l2"], grads["first_raw"])   # another noise level
    cfg = ComplexityConfig(n_boot_spectral=0, n_boot=10, pa_draws=4, mle_k=3,
                           vaease=VAEaseConfig(enabled=False))
    key = jax.random.fold_in(jax.random.split(jax.random.key(0))[1], 1)   # the survey's, line 1
    for name, how in (("t100_l2", "l2"), ("first_raw", "none")):
        want = estimate_all(normalize_rows(jnp.asarray(grads[name]), how), key, cfg)
        assert recs[name]["estimates"]["mle"]["value"] == pytest.approx(float(want["mle"]["value"]),
                                                                        rel=1e-5), name
    with pytest.raises(survey.UserError):
        survey.SurveyRun(rows="some")
    # A survey folder from before these flags resumes under their defaults; other rows do not.
    header = tmp_path / "first_raw" / "survey.json"
    old = json.loads(header.read_text())
    for k in ("timestep", "rows", "normalize"):
        old["config"].pop(k)
    header.write_text(json.dumps(old))
    base = ["survey", str(one), *FAST, "--out", str(tmp_path / "first_raw")]
    assert cli.main(base) == 0
    assert cli.main(base + ["--rows", "all"]) == 2


def test_a_survey_folder_with_a_flat_recorded_config_resumes(tmp_path, capsys):
    """Survey folders from before the model: / sampler: nesting hold a flat config: the same
    settings resume them (nothing measured again), other sampler settings are refused."""
    one = tmp_path / "one.txt"
    one.write_text("a red cat\n")
    base = ["survey", str(one), *FAST, "--out", str(tmp_path / "s")]
    assert cli.main(base) == 0
    header = tmp_path / "s" / "survey.json"
    old = json.loads(header.read_text())
    cfg = old["config"]
    flat = {k: v for k, v in cfg.items() if k not in ("model", "sampler")} | cfg["sampler"] | {
        ("model" if k == "name" else k): v for k, v in cfg["model"].items()}
    assert flat["model"] == "tiny" and flat["steps"] == 2
    header.write_text(json.dumps(old | {"config": flat}))
    assert cli.main(base) == 0
    assert len(lines_of(tmp_path / "s")[1]) == 1
    capsys.readouterr()
    assert cli.main(base + ["--steps", "3"]) == 2
    assert "other settings (sampler.steps)" in capsys.readouterr().err
