"""Typed run configs: stdlib dataclasses, loaded from YAML and overridden by CLI flags.

Each module defines its own config dataclass next to its code. This module only turns such a
dataclass into a command-line parser (one flag per field, dotted flags for nested dataclasses),
merges a YAML file under the flags, and builds the instance, so that `__post_init__` validates
before anything compiles. It is our own ~150 lines instead of draccus: the parser is replaceable
and every bad value becomes one clear `UserError` line instead of a traceback.

Field metadata understood here: ``help`` (one line, with units), ``positional`` (a positional
argument instead of a flag), ``choices``.

Composition: a nested dataclass field is a section (``--complexity.mle-k``, ``complexity:`` in
YAML). A section class that declares ``__config_aliases__`` gives each of its fields a short
flag and YAML key beside the dotted one (its bare name, or the name the dict gives it), unless
the run config has a field of that name: every model-running command nests ``model:``
(`ModelConfig`) and ``sampler:`` (`SamplerConfig`), and ``--model tiny --steps 2`` still means
``--model.name tiny --sampler.steps 2`` (the CLI as easy to type as before). A recorded config
is nested too; `jaxsteer.recorded` reads the flat ones run folders hold from before.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from jaxsteer.errors import UserError

T = TypeVar("T")


def opt(default: Any = dataclasses.MISSING, help: str = "", *, positional: bool = False,
        choices: tuple | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a one-line help text (shown by ``--help``)."""
    meta = {"help": help, "positional": positional, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _resolve(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _convert(value: Any, tp: Any, name: str) -> Any:
    """Converts a YAML or CLI value to the field's type, or raises a UserError naming the field."""
    tp, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError(f"--{name} needs a value")
    origin = get_origin(tp)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if origin is Literal:
            if value not in get_args(tp):
                raise UserError(f"--{name} must be one of {list(get_args(tp))}, got {value!r}")
            return value
        if origin is tuple:
            inner = get_args(tp)[0]
            items = value.split(",") if isinstance(value, str) else list(value)
            items = [i for i in (x.strip() if isinstance(x, str) else x for x in items) if i != ""]
            return tuple(_convert(i, inner, name) for i in items)
        if tp is Path:
            return Path(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
    except UserError:
        raise
    except (TypeError, ValueError):
        raise UserError(f"--{name}: cannot read {value!r} as "
                        f"{getattr(tp, '__name__', tp)}") from None
    return value


def _flat_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) for every leaf field, descending into nested dataclasses."""
    hints = _resolve(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _flat_fields(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f, tp))
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one UserError line instead of usage + SystemExit
        raise UserError(f"{message} (see {self.prog} --help)")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _join_dash_values(argv: list[str], flags: set[str]) -> list[str]:
    """``--alphas -3:3:7`` -> ``--alphas=-3:3:7``: argparse would take the value for a flag."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (tok in flags and nxt is not None and nxt.startswith("-") and nxt.split("=")[0]
                not in flags and nxt not in ("-h", "--help")):
            out.append(f"{tok}={nxt}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _bool_words(argv: list[str], bools: set[str]) -> list[str]:
    """``--x true`` / ``--x=no`` -> ``--x`` / ``--no-x``: the YAML-style spelling keeps working
    beside argparse's on/off pair (a bare ``--x`` means true)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        flag, eq, value = tok.partition("=")
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if flag in bools and not eq and nxt is not None and nxt.lower() in _TRUE + _FALSE:
            value, eq = nxt, "="
            i += 1
        if flag in bools and eq:
            if value.lower() not in _TRUE + _FALSE:
                raise UserError(f"{flag}: cannot read {value!r} as a boolean (use {flag} or "
                                f"--no-{flag[2:]})")
            tok = flag if value.lower() in _TRUE else f"--no-{flag[2:]}"
        out.append(tok)
        i += 1
    return out


def _shown(value: Any) -> str:
    """A default as a user would type it: ``999,749`` rather than ``(999, 749)``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def _help(text: str, default: Any) -> str:
    """The field's help with its default once (a help that names its own default keeps it, and
    None, "unset", is said by the help itself); ``%`` escaped: argparse %-formats help strings."""
    named = "default" in text.lower() or re.search(r"\[[^\]]*\]\s*$", text)
    if not named and default is not None and default is not dataclasses.MISSING:
        text = f"{text} (default: {_shown(default)})" if text else f"default: {_shown(default)}"
    return text.replace("%", "%%")


def _defaults(cls: type, base: Any = None, prefix: str = "") -> dict[str, Any]:
    """Dotted name -> default, nested fields from their default instance (as `build` does)."""
    out: dict[str, Any] = {}
    hints = _resolve(cls)
    for f in dataclasses.fields(cls):
        if base is not None:
            value = getattr(base, f.name)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = dataclasses.MISSING  # a required field: no default to show
        if dataclasses.is_dataclass(hints[f.name]):
            nested = None if value is dataclasses.MISSING else value
            out |= _defaults(hints[f.name], nested, f"{prefix}{f.name}.")
        else:
            out[prefix + f.name] = value
    return out


def aliases(cls: type) -> dict[str, str]:
    """{short name: dotted field} of the sections of ``cls`` that declare ``__config_aliases__``
    (``{"model": "model.name", "steps": "sampler.steps", ...}``), but not a run field's name."""
    hints = _resolve(cls)
    own = {f.name for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(hints[f.name])}
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        renames = getattr(hints[f.name], "__config_aliases__", None)
        if renames is None:
            continue
        for g in dataclasses.fields(hints[f.name]):
            short = renames.get(g.name, g.name)
            if short not in own:
                out.setdefault(short, f"{f.name}.{g.name}")
    return out


def _unalias(cls: type, values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` with short names replaced by the dotted ones; both spellings of one field in
    one source is an error (which one would win is not obvious)."""
    shorts = aliases(cls)
    out = dict(values)
    for short in [k for k in values if k in shorts]:
        if shorts[short] in values:
            raise UserError(f"{source} sets both {shorts[short]} and {short}: keep one")
        out[shorts[short]] = out.pop(short)
    return out


def _group_title(cls: type, dotted: str) -> str:
    """A flag's help section: run flags, a section with short flags (``model flags``), or
    another nested config (``sae flags (--sae.*)``)."""
    if "." not in dotted:
        return "run flags"
    section = dotted.split(".")[0]
    short = hasattr(_resolve(cls)[section], "__config_aliases__")
    return f"{section} flags" if short else f"{section} flags (--{section}.*)"


def build_parser(cls: type, prog: str, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser with one flag per (dotted) field; values stay strings until `build`."""
    parser = _Parser(prog=prog, description=description.replace("%", "%%"))
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of field values; flags given here override it")
    defaults = _defaults(cls)
    groups = {"run flags": parser.add_argument_group("run flags")}
    short = {dotted: name for name, dotted in aliases(cls).items()}
    for name, f, tp in _flat_fields(cls):
        meta = f.metadata
        title = _group_title(cls, name)
        group = groups.setdefault(title, parser.add_argument_group(title))
        text = _help(meta.get("help") or "", defaults.get(name))
        spellings = [short[name], name] if name in short else [name]
        flags = [f"--{n.replace('_', '-')}" for n in spellings]
        if meta.get("positional"):
            group.add_argument(name, nargs="?", default=argparse.SUPPRESS, help=text)
        elif _unwrap_optional(tp)[0] is bool:
            group.add_argument(*flags, dest=name, default=argparse.SUPPRESS, help=text,
                               action=argparse.BooleanOptionalAction)
        else:
            choices = meta.get("choices")
            metavar = "|".join(map(str, choices)) if choices else (
                short.get(name) or name.split(".")[-1]).upper()
            group.add_argument(*flags, dest=name, default=argparse.SUPPRESS,
                               help=text, choices=choices, metavar=metavar)
    return parser


def load_yaml(path: Path) -> dict:
    """Reads a YAML mapping of field values, with a clear error if it is missing or malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise UserError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of field names to values")
    return data


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"name": "tiny"}}`` -> ``{"model.name": "tiny"}``."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def build(cls: type[T], values: dict[str, Any]) -> T:
    """Builds ``cls`` from dotted-name values (or short names: `aliases`), converting types;
    unknown names are an error."""
    fields = {name: (f, tp) for name, f, tp in _flat_fields(cls)}
    values = _unalias(cls, values, "the config")

    def base_of(f: dataclasses.Field) -> Any:
        """A nested field's default instance (its default or default_factory), if any."""
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"unknown config field(s) for {cls.__name__}: {', '.join(unknown)}")

    def make(c: type, prefix: str, base: Any = None) -> Any:
        """``c`` from the values under ``prefix``; unset fields keep ``base``'s values (a nested
        field's default instance) or else the class defaults."""
        hints = _resolve(c)
        kwargs = {}
        for f in dataclasses.fields(c):
            tp = hints[f.name]
            key = prefix + f.name
            if dataclasses.is_dataclass(tp):
                nested = base_of(f) if base is None else getattr(base, f.name)
                kwargs[f.name] = make(tp, key + ".", nested)
            elif key in values:
                kwargs[f.name] = _convert(values[key], tp, key.replace("_", "-"))
            elif base is not None:
                kwargs[f.name] = getattr(base, f.name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise UserError(f"missing required value: {key.replace('_', '-')}")
        try:
            return c(**kwargs)
        except UserError:
            raise
        except (TypeError, ValueError) as e:
            raise UserError(str(e)) from None

    return make(cls, "")


def parse(cls: type[T], argv: list[str], prog: str, description: str = "",
          presets: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> T:
    """Parses ``argv`` into ``cls``: YAML from ``--config`` first, then the flags over it.

    ``presets(values)`` may return defaults that depend on the given values (dotted names: a
    bundled model's sampler settings for ``values["model.name"]``); they fill only the fields
    neither the YAML nor the flags set.
    """
    parser = build_parser(cls, prog, description)
    flags = {o for a in parser._actions for o in a.option_strings}
    bools = {o for a in parser._actions if isinstance(a, argparse.BooleanOptionalAction)
             for o in a.option_strings if not o.startswith("--no-")}
    argv = _bool_words(list(argv), bools)
    ns = vars(parser.parse_args(_join_dash_values(argv, flags)))
    path = ns.pop("config")
    data = load_yaml(path) if path else {}
    command = data.pop("command", None)  # a YAML may say which command it is for
    if command is not None and command != prog.split()[-1]:
        raise UserError(f"{path} is a config for `jaxsteer {command}`, not `{prog}`")
    values = _unalias(cls, flatten(data), str(path)) | ns   # steps: 4 -> sampler.steps
    if presets is not None:
        names = {name for name, _, _ in _flat_fields(cls)}
        given = _unalias(cls, presets(values), "the presets")
        values = {**{k: v for k, v in given.items() if k in names}, **values}
    return build(cls, values)


def to_dict(cfg: Any) -> dict:
    """The resolved config as JSON-ready data, written into every output."""
    def clean(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    return clean(dataclasses.asdict(cfg))


def check_sections(cfg: Any) -> None:
    """Every nested section of ``cfg`` holds its own config class: ``CollectRun(model="shapes")``
    (the flat spelling from before the nesting, from Python) fails here with one line instead
    of later inside the command."""
    hints = _resolve(type(cfg))
    for f in dataclasses.fields(cfg):
        tp, value = hints[f.name], getattr(cfg, f.name)
        if dataclasses.is_dataclass(tp) and not isinstance(value, tp):
            raise UserError(f"{type(cfg).__name__}({f.name}=...) takes a {tp.__name__}, got "
                            f"{value!r} (e.g. model=ModelConfig(name=...), "
                            "sampler=SamplerConfig(steps=...))")
