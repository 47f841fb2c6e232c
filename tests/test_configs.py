"""Every shipped YAML parses into its command's run config (a stale config fails CI)."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from jaxsteer import cli, config
from jaxsteer.config import opt
from jaxsteer.errors import UserError
from jaxsteer.sampling import SamplerConfig

CONFIGS = sorted((Path(__file__).parent.parent / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    command = yaml.safe_load(path.read_text()).get("command")
    if command is None:
        pytest.skip(f"{path.name} is a fragment merged into run configs")
    cls, _ = cli.COMMANDS[command][1]()
    cfg = config.parse(cls, ["--config", str(path)], prog=f"jaxsteer {command}")
    assert isinstance(cfg, cls)


def test_flags_override_yaml_and_bad_values_are_clear(tmp_path):
    from jaxsteer.collect import CollectRun
    path = tmp_path / "c.yaml"
    path.write_text("command: collect\npairs: 8\nsteps: 2\n")
    cfg = config.parse(CollectRun, ["--config", str(path), "--pairs", "16"], "jaxsteer collect")
    assert (cfg.pairs, cfg.sampler.steps) == (16, 2)
    with pytest.raises(UserError, match="unknown config field"):
        config.build(CollectRun, {"pairz": 3})
    with pytest.raises(UserError, match="not `jaxsteer sample`"):
        config.parse(CollectRun, ["--config", str(path)], "jaxsteer sample")
    with pytest.raises(UserError, match="invalid choice"):
        config.parse(CollectRun, ["--scheduler", "heun"], "jaxsteer collect")
    cfg = config.parse(CollectRun, ["--timesteps", "999,749"], "jaxsteer collect")
    assert cfg.sampler.timesteps == (999, 749)


def test_bare_boolean_flags_mean_true():
    from jaxsteer.collect import CollectRun
    assert config.parse(CollectRun, ["--unroll"], "jaxsteer collect").unroll is True
    assert config.parse(CollectRun, ["--unroll", "false"], "jaxsteer collect").unroll is False
    assert config.parse(CollectRun, ["--prompt", "-x"],
                        "jaxsteer collect").prompt == "-x"


def test_bundled_model_presets_fill_only_the_flags_left_out(tmp_path):
    from jaxsteer.collect import CollectRun
    from jaxsteer.models.bundled import PRESETS
    presets = cli._presets_for(CollectRun)
    turbo = PRESETS["shapes-turbo"]
    cfg = config.parse(CollectRun, ["--model", "shapes-turbo"], "jaxsteer collect", presets=presets)
    assert (cfg.sampler.steps, cfg.sampler.guidance) == (turbo["steps"], turbo["guidance"])
    cfg = config.parse(CollectRun, ["--model", "shapes-turbo", "--steps", "3"], "jaxsteer collect",
                       presets=presets)
    assert (cfg.sampler.steps, cfg.sampler.guidance) == (3, turbo["guidance"])
    path = tmp_path / "c.yaml"
    path.write_text("model: shapes-turbo\nguidance: 1.5\n")
    cfg = config.parse(CollectRun, ["--config", str(path)], "jaxsteer collect", presets=presets)
    assert (cfg.sampler.steps, cfg.sampler.guidance) == (turbo["steps"], 1.5)
    assert config.parse(CollectRun, [], "jaxsteer collect",
                        presets=presets).sampler.steps == 4  # tiny
    from jaxsteer.decompose.run import DecomposeRun
    assert cli._presets_for(DecomposeRun) is None


@dataclasses.dataclass(frozen=True)
class _Inner:
    k: int = opt(1, "k")
    name: str = opt("a", "name")


@dataclasses.dataclass(frozen=True)
class _Outer:
    inner: _Inner = opt(default_factory=lambda: _Inner(k=8), help="inner settings")
    x: int = opt(0, "x")


def test_nested_fields_start_from_their_default_instance():
    """A nested config's default_factory is honoured; flags override single fields of it."""
    assert config.parse(_Outer, [], prog="t").inner == _Inner(k=8)
    assert config.parse(_Outer, ["--inner.name", "b"], prog="t").inner == _Inner(k=8, name="b")
    assert config.parse(_Outer, ["--inner.k", "3"], prog="t").inner == _Inner(k=3)


@dataclasses.dataclass(frozen=True)
class _Helped:
    share: float = opt(0.1, "capped at 10% of all steps")
    sizes: tuple[int, ...] = opt((32, 64), "channels")
    own: str | None = opt(None, "where it goes (default: beside the input)")
    flag: bool = opt(True, "a switch")
    inner: _Inner = opt(default_factory=lambda: _Inner(k=8), help="inner settings")


def test_help_has_one_default_per_flag_readable_lists_and_on_off_booleans():
    text = config.build_parser(_Helped, "t").format_help()   # a '%' in a help must not crash
    assert "capped at 10% of all steps (default: 0.1)" in text
    assert "(default: 32,64)" in text and "(32, 64)" not in text
    assert text.count("(default:") == 6 and "(default: None)" not in text
    parser = config.build_parser(_Helped, "t")
    assert all((a.help or "").lower().count("default") <= 1 for a in parser._actions)
    assert "--flag, --no-flag" in text and "(default: on)" in text
    assert "--inner.k K" in text and "(default: 8)" in text   # the default instance's value
    assert "inner flags" in text


@pytest.mark.parametrize("argv, want", [([], True), (["--flag"], True), (["--no-flag"], False),
                                        (["--flag", "false"], False), (["--flag=no"], False),
                                        (["--flag", "true"], True)])
def test_booleans_read_on_off_pairs_and_words(argv, want):
    assert config.parse(_Helped, argv, prog="t").flag is want


def test_a_bad_boolean_word_is_one_clear_error():
    with pytest.raises(UserError, match="as a boolean"):
        config.parse(_Helped, ["--flag=maybe"], prog="t")


def test_help_of_a_run_config_groups_model_sampler_and_run_flags():
    from jaxsteer.sample import SampleRun
    text = config.build_parser(SampleRun, "jaxsteer sample").format_help()
    assert text.index("run flags:") < text.index("sampler flags:") < text.index("model flags:")
    assert "(default: on)" in text and "--remat, --no-remat" in text


def test_model_and_sampler_sections_in_yaml_and_flags_mean_the_flat_fields(tmp_path):
    """`model:` / `sampler:` sections and --model.* / --sampler.* flags are the same fields as
    the short flags and flat YAML keys; the recorded config is nested."""
    from jaxsteer.collect import CollectRun
    nested = tmp_path / "nested.yaml"
    nested.write_text("command: collect\nmodel:\n  name: tiny\n  dtype: float32\n"
                      "sampler:\n  steps: 2\n  remat: false\npairs: 8\n")
    flat = tmp_path / "flat.yaml"
    flat.write_text("command: collect\nmodel: tiny\ndtype: float32\nsteps: 2\nremat: false\n"
                    "pairs: 8\n")
    a = config.parse(CollectRun, ["--config", str(nested)], "jaxsteer collect")
    b = config.parse(CollectRun, ["--config", str(flat)], "jaxsteer collect")
    c = config.parse(CollectRun, ["--model.name", "tiny", "--model.dtype", "float32",
                                  "--sampler.steps", "2", "--sampler.remat", "false",
                                  "--pairs", "8"], "jaxsteer collect")
    d = config.parse(CollectRun, ["--model", "tiny", "--dtype", "float32", "--steps", "2",
                                  "--no-remat", "--pairs", "8"], "jaxsteer collect")
    assert a == b == c == d and (a.model.name, a.model.dtype, a.sampler.steps,
                                 a.sampler.remat) == ("tiny", "float32", 2, False)
    assert config.to_dict(a)["sampler"]["steps"] == 2 and "steps" not in config.to_dict(a)
    assert config.aliases(CollectRun)["model"] == "model.name"
    both = tmp_path / "both.yaml"
    both.write_text("command: collect\nsteps: 3\nsampler:\n  steps: 2\n")
    with pytest.raises(UserError, match="both sampler.steps and steps"):
        config.parse(CollectRun, ["--config", str(both)], "jaxsteer collect")
    with pytest.raises(UserError, match="unknown config field"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("command: collect\nsampler:\n  stepz: 2\n")
        config.parse(CollectRun, ["--config", str(bad)], "jaxsteer collect")


def test_a_section_given_flat_from_python_is_one_clear_error():
    from jaxsteer.collect import CollectRun
    from jaxsteer.models import ModelConfig
    with pytest.raises(UserError, match=r"CollectRun\(model=...\) takes a ModelConfig, got "
                       "'shapes'"):
        CollectRun(model="shapes")
    with pytest.raises(UserError, match=r"sampler=...\) takes a SamplerConfig"):
        CollectRun(model=ModelConfig(name="shapes"), sampler={"steps": 4})
    assert CollectRun(model=ModelConfig(name="shapes")).model.name == "shapes"


def test_short_names_are_aliases_in_python_too_and_a_run_field_keeps_its_name():
    from jaxsteer.collect import CollectRun
    a = config.build(CollectRun, {"model": "shapes", "steps": 2})
    b = config.build(CollectRun, {"model.name": "shapes", "sampler.steps": 2})
    assert a == b and a.model.name == "shapes"
    with pytest.raises(UserError, match="both sampler.steps and steps"):
        config.build(CollectRun, {"steps": 2, "sampler.steps": 3})

    @dataclasses.dataclass(frozen=True)
    class _Run:
        sampler: SamplerConfig = opt(default_factory=SamplerConfig, help="")
        steps: int = opt(10, "the run's own steps")
    assert config.aliases(_Run)["guidance"] == "sampler.guidance" and "steps" not in \
        config.aliases(_Run)
    assert config.parse(_Run, ["--steps", "3"], "t") == _Run(steps=3)
