"""`jaxsteer bench pca` (`jaxsteer.benchmarks.decomposition`) on tiny planted data: the reported
fields, the solver choice, and the JSON record of the run. (`bench_sae` is left out: its three
compiles of the SAE cost seconds on a CPU.)"""

import json

from jaxsteer.benchmarks.decomposition import PCABench, bench_pca, run_pca

TIMES = ("compile_s", "first_call_s", "steady_s")


def test_pca_reports_compile_and_steady_times_and_picks_the_solver_by_width():
    res = bench_pca(n=32, m=24, k=4, repeats=2)
    assert res["solver"] == "cov"                       # m <= 4096: covariance solver
    assert (res["n"], res["m"], res["k"]) == (32, 24, 4)
    assert all(isinstance(res[t], float) and res[t] >= 0 for t in TIMES)
    assert isinstance(res["device"], str) and res["device"]


def test_run_pca_records_config_and_result_and_prints_one_table(tmp_path, capsys):
    cfg = PCABench(n=16, m=8, seed=3, out=tmp_path / "bench" / "pca.json")
    out = run_pca(cfg)
    saved = json.loads(cfg.out.read_text())
    assert saved["config"]["n"] == 16 and saved["config"]["m"] == 8
    assert saved["result"]["solver"] == "cov" and saved["result"]["n"] == 16
    assert out["out"] == str(cfg.out) and out["m"] == 8
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["n", "m", "k"] and len(lines) == 3  # head, rule, one row
