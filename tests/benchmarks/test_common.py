"""`jaxsteer.benchmarks.common`: run specs, FLOPs of a cost analysis, cache counts, timing."""

import pytest

from jaxsteer.benchmarks import CONFIGS
from jaxsteer.benchmarks.common import (
    ATTENTIONS,
    REMATS,
    cache_entries,
    flops,
    gib,
    lowered_flops,
    model_flops_per_call,
    parse_run,
    time_calls,
)
from jaxsteer.errors import UserError


def test_an_empty_field_takes_the_default_and_the_config_its_own_remat_and_batches():
    cfg = CONFIGS["tiny-2-cfg"]
    job = parse_run("tiny-2-cfg", attention="xla")
    assert (job.config, job.attention, job.remat, job.batches) == (
        "tiny-2-cfg", "xla", cfg.remat, cfg.batches)
    # An explicit remat beats the config's; an empty field in the spec keeps the default.
    assert parse_run("tiny-2-cfg::", remat="dots").remat == "dots"
    assert parse_run("tiny-2-cfg::matmuls:3/1").remat == "matmuls"
    assert parse_run(" tiny-1:cudnn ").attention == "cudnn"  # surrounding spaces are dropped
    assert parse_run("tiny-1:::3/1").batches == (3, 1)        # order kept, not sorted


@pytest.mark.parametrize("spec,match", [
    ("tiny-1:xla:none:4:extra", "at most config:attention:remat:batches"),
    ("tiny-1:flash", "attention must be one of"),
    ("tiny-1:xla:often", "remat must be one of"),
    ("tiny-1:xla:none:4/x", "batches must be integers"),
    ("tiny-1:xla:none:4/0", "batches must be positive"),
    ("tiny-1:xla:none:-2", "batches must be positive"),
])
def test_bad_run_specs_say_what_is_wrong(spec, match):
    with pytest.raises(UserError, match=match):
        parse_run(spec)


def test_every_config_parses_with_every_attention_and_remat():
    for name in CONFIGS:
        for att in ATTENTIONS:
            for rm in REMATS:
                job = parse_run(f"{name}:{att}:{rm}")
                assert (job.attention, job.remat) == (att, rm)


def test_flops_of_a_cost_analysis():
    assert flops(None) is None
    assert flops({"flops": 12}) == 12.0 and isinstance(flops({"flops": 12}), float)
    assert flops([{"flops": 3.5, "bytes accessed": 9}]) == 3.5   # a list of one
    assert flops([]) is None and flops(()) is None
    assert flops({"bytes accessed": 9}) is None                  # no count
    assert flops({"flops": -1.0}) is None                        # XLA's "unknown"


def test_model_flops_count_every_layer_of_a_scanned_transformer_stack():
    # tiny-xl's second block stacks two transformer layers; XLA's cost analysis counts a
    # scan's body once, so the MFU's FLOPs must come from the unrolled lowering.
    scanned = lowered_flops("tiny-xl", 1.0, "float32", scan_layers=True)
    assert model_flops_per_call("tiny-xl", 1.0, "float32") > scanned > 0


def test_cache_entries_count_files_in_every_subfolder(tmp_path):
    assert cache_entries(None) == 0 and cache_entries("") == 0
    assert cache_entries(str(tmp_path / "absent")) == 0
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("x", "a/y", "a/b/z", "a/b/w"):
        (tmp_path / p).write_text("1")
    assert cache_entries(str(tmp_path)) == 4


def test_gib():
    assert gib(None) is None
    assert gib(3 * 2**30) == 3.0 and gib(2**29) == 0.5


def test_time_calls_runs_at_least_three_and_at_most_two_hundred_timed_calls():
    calls = []

    def fn(x):
        calls.append(x)
        return x + 1

    first, steady, iters, out = time_calls(fn, (1,), min_time_s=0.0)
    assert iters == 3 and len(calls) == 2 + 3 and out == 2
    assert first >= 0 and steady >= 0
    calls.clear()
    _, _, iters, _ = time_calls(fn, (1,), min_time_s=1e6)  # a very fast fn: capped
    assert iters == 200 and len(calls) == 202
