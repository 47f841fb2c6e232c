"""`jaxsteer bench sample` on the tiny configuration: the generator's images/s and the pool
writer's end-to-end rate, the table, the JSON; the PyTorch side only where torch is installed."""

import json
import shutil

import pytest

from jaxsteer.benchmarks import sampling
from jaxsteer.errors import UserError


def test_sample_bench_times_the_generator_and_the_pool_writer(tmp_path, capsys):
    out = tmp_path / "sample.json"
    summary = sampling.run(sampling.SampleBench(configs=("tiny:4",), dtype="float32",
                                                attention="xla", min_time_s=0.01,
                                                pool_shards=2, out=out))
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["status"] == "ok", rows
    row = rows[0]
    assert row["side"] == "jax" and row["steps"] == 2 and row["finite"]
    assert row["latent_shape"] == [4, 8, 8] and row["latent_std"] > 0.1
    assert row["images_per_s"] > 0 and row["pool_images_per_s"] > 0
    assert row["pool_minutes_10k"] == pytest.approx(10_000 / row["pool_images_per_s"] / 60)
    assert summary["best"]["tiny"] == pytest.approx(row["images_per_s"], rel=1e-2)
    assert "pool images/s" in capsys.readouterr().out


def test_sample_bench_flags_fail_clearly():
    with pytest.raises(UserError, match="unknown sample bench config"):
        sampling.SampleBench(configs=("sd-turbo-xl",))
    with pytest.raises(UserError, match="batches must be integers"):
        sampling.SampleBench(configs=("tiny:four",))
    assert sampling.parse_run("sdxl-dmd2") == ("sdxl-dmd2", (16,))


def test_the_ratio_table_compares_with_the_best_pytorch_mode():
    rows = [{"side": "jax", "config": "tiny", "status": "ok", "images_per_s": 30.0, "batch": 4},
            {"side": "torch", "config": "tiny", "status": "ok", "images_per_s": 10.0,
             "batch": 4, "mode": "eager"},
            {"side": "torch", "config": "tiny", "status": "ok", "images_per_s": 20.0,
             "batch": 4, "mode": "compile"}]
    assert "1.50" in sampling.format_ratio(rows) and "compile" in sampling.format_ratio(rows)


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="the PyTorch side needs a GPU")
def test_pytorch_side_runs_the_tiny_loop(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from jaxsteer.benchmarks import sampling_reference

    out = tmp_path / "torch.json"
    assert sampling_reference.main(["--configs", "tiny", "--variants", "eager", "--min-time-s",
                                    "0.01", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows and rows[0]["status"] == "ok" and rows[0]["finite"], rows
