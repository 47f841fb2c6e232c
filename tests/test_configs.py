"""Every shipped YAML parses into its command's run config (a stale config fails CI)."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from jaxsteer import cli, config
from jaxsteer.config import opt
from jaxsteer.errors import UserError

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
    assert (cfg.pairs, cfg.steps) == (16, 2)
    with pytest.raises(UserError, match="unknown config field"):
        config.build(CollectRun, {"pairz": 3})
    with pytest.raises(UserError, match="not `jaxsteer sample`"):
        config.parse(CollectRun, ["--config", str(path)], "jaxsteer sample")
    with pytest.raises(UserError, match="invalid choice"):
        config.parse(CollectRun, ["--scheduler", "heun"], "jaxsteer collect")
    assert config.parse(CollectRun, ["--timesteps", "999,749"], "jaxsteer collect").timesteps == (999, 749)


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
    assert (cfg.steps, cfg.guidance) == (turbo["steps"], turbo["guidance"])
    cfg = config.parse(CollectRun, ["--model", "shapes-turbo", "--steps", "3"], "jaxsteer collect",
                       presets=presets)
    assert (cfg.steps, cfg.guidance) == (3, turbo["guidance"])
    path = tmp_path / "c.yaml"
    path.write_text("model: shapes-turbo\nguidance: 1.5\n")
    cfg = config.parse(CollectRun, ["--config", str(path)], "jaxsteer collect", presets=presets)
    assert (cfg.steps, cfg.guidance) == (turbo["steps"], 1.5)
    assert config.parse(CollectRun, [], "jaxsteer collect", presets=presets).steps == 4  # tiny
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
