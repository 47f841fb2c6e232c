"""The command line of the PyTorch reference benchmarks (`jaxsteer.benchmarks.torch_cli.parse`);
torch itself is not needed to parse it."""

import pytest

from jaxsteer.benchmarks.torch_cli import VARIANTS, parse

KW = dict(configs="sd-turbo-1", configs_help="runs", batches_help="pairs per call",
          variants="eager,compile", out="runs/bench/torch.json")


def test_defaults_and_flags():
    args, variants = parse("torch_reference", "The PyTorch side.\nMore.", [], **KW)
    assert variants == ("eager", "compile") == VARIANTS
    assert (args.configs, args.batches, args.out) == ("sd-turbo-1", "", "runs/bench/torch.json")
    assert (args.min_time_s, args.budget_s) == (3.0, 0.0)
    args, variants = parse("flux_reference", "doc", [
        "--configs", "tiny-1,tiny-2-cfg", "--batches", "4/8", "--variants", "compile,",
        "--min-time-s", "0.5", "--budget-s", "60", "--out", "x.json"], **KW)
    assert variants == ("compile",)                              # empty items are dropped
    assert (args.configs, args.batches, args.out) == ("tiny-1,tiny-2-cfg", "4/8", "x.json")
    assert (args.min_time_s, args.budget_s) == (0.5, 60.0)


def test_remat_is_offered_only_where_asked_and_checked():
    assert not hasattr(parse("torch_reference", "doc", [], **KW)[0], "remat")
    assert parse("flux_reference", "doc", [], **KW, remat="blocks")[0].remat == "blocks"
    assert parse("flux_reference", "doc", ["--remat", "none"], **KW, remat="blocks")[0].remat \
        == "none"
    with pytest.raises(SystemExit) as e:
        parse("flux_reference", "doc", ["--remat", "matmuls"], **KW, remat="blocks")
    assert e.value.code == 2
    with pytest.raises(SystemExit):   # a module without it refuses the flag
        parse("torch_reference", "doc", ["--remat", "none"], **KW)


@pytest.mark.parametrize("variants", ["eager,jit", ",", "Eager"])
def test_an_unknown_or_empty_variant_is_one_line_and_exit_2(variants, capsys):
    with pytest.raises(SystemExit) as e:
        parse("torch_reference", "doc", ["--variants", variants], **KW)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--variants takes eager, compile" in err
    assert err.startswith("usage: python -m jaxsteer.benchmarks.torch_reference")


def test_help_names_the_module_and_the_first_line_of_its_doc(capsys):
    with pytest.raises(SystemExit) as e:
        parse("sampling_reference", "Sampling on PyTorch.\nDetails nobody reads.", ["--help"],
              **KW)
    out = capsys.readouterr().out
    assert e.value.code == 0 and "python -m jaxsteer.benchmarks.sampling_reference" in out
    assert "Sampling on PyTorch." in out and "Details nobody reads." not in out
