"""`jaxsteer bench throughput` on a tiny architecture: runs, prints the table, writes JSON."""

import json

import pytest

from jaxsteer.benchmarks.throughput import COLUMNS
from jaxsteer.cli import main


@pytest.mark.slow  # compiles a UNet gradient twice (~40 s of CPU); the bench runs on accelerators
def test_throughput_on_a_tiny_architecture_prints_the_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "throughput", "--configs", "tiny-1:xla:none:2", "--dtype", "float32",
                 "--min-time-s", "0.05",
                 "--cached-compile", "false", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("config"))
    for column in COLUMNS:
        assert column in header
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    row = rows[0]
    assert row["grads_per_s"] > 0 and row["finite"]
    assert row["grad_shape"] == [8, 77, 32]  # batch 2 padded to the 8 test devices, all 77 rows
    assert row["model_flops_per_grad"] > 0 and row["mfu"] > 0
    assert row["peak_gib"] > 0 and row["compile_s"] > 0


def test_flux_config_differentiates_every_t5_row_of_tiny_flux(tmp_path):
    """The flux-schnell bench's path on its tiny twin: a FluxModel of random transformer
    weights, random T5 rows and pooled vector, every row differentiated, one call at t=999."""
    from jaxsteer.benchmarks import CONFIGS
    from jaxsteer.benchmarks.throughput import ThroughputBench, run

    assert CONFIGS["flux-schnell"].reference == "flux_reference"
    out = tmp_path / "bench.json"
    run(ThroughputBench(configs=("tiny-flux-1:xla:blocks:2",), dtype="float32", min_time_s=0.01,
                        cached_compile=False, model_flops=False, out=out))
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    assert rows[0]["grad_shape"] == [8, 16, 32]   # padded to the 8 test devices, all 16 rows
    assert rows[0]["finite"] and rows[0]["grad_rms"] > 0
