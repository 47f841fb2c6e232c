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
