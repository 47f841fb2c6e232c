"""`jaxsteer bench WHAT`: the dispatcher picks each benchmark's own typed config."""

import pytest

from jaxsteer.bench import select
from jaxsteer.benchmarks.common import parse_run
from jaxsteer.benchmarks.groundtruth import GroundTruthBench
from jaxsteer.benchmarks.survey_throughput import SurveyBench
from jaxsteer.benchmarks.throughput import ThroughputBench
from jaxsteer.config import parse
from jaxsteer.errors import UserError


def bench(argv):
    """The config ``jaxsteer bench ARGV`` runs with."""
    cls, _, rest, prog = select(list(argv))
    return parse(cls, rest, prog)


def test_run_specs_and_bad_values():
    job = parse_run("sd-turbo-1:cudnn::16/32")
    assert (job.attention, job.remat, job.batches) == ("cudnn", "none", (16, 32))
    assert parse_run("sdxl-dmd2").remat == "matmuls"
    with pytest.raises(UserError, match="unknown bench config"):
        parse_run("sd-turbo-9")
    with pytest.raises(UserError, match="remat"):
        bench(["throughput", "--configs", "sd-turbo-1:xla:sometimes"])
    with pytest.raises(UserError, match="unknown benchmark"):
        bench(["speed"])
    cfg = bench(["survey", "--pairs", "64", "--prompts", "2"])
    assert isinstance(cfg, SurveyBench)
    assert (cfg.pairs, cfg.prompts, cfg.pool) == (64, 2, 0)
    cfg = bench(["groundtruth", "--groundtruth.pairs", "12", "--groundtruth.prompts",
                 "a circle,a shape"])
    assert isinstance(cfg, GroundTruthBench)
    assert (cfg.groundtruth.pairs, cfg.groundtruth.prompts) == (12, ("a circle", "a shape"))
    with pytest.raises(UserError, match="must start with 'a'"):
        bench(["groundtruth", "--groundtruth.prompts", "the circle,a shape"])


def test_flags_without_a_benchmark_go_to_throughput_and_help_lists_them(capsys):
    assert isinstance(bench(["--configs", "tiny-1"]), ThroughputBench)
    with pytest.raises(SystemExit) as e:
        select(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: jaxsteer bench WHAT")
    for what in ("throughput", "profile", "survey", "pca", "sae", "groundtruth"):
        assert f"  {what} " in out
