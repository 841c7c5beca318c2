"""Command-line flags generated from the per-stage config dataclasses, and JSON config files.

Every field of a section of `RunConfig` becomes `--SECTION.FIELD` (dashes for underscores), its help
taken from the field's trailing comment in the source, so a new option is one annotated line.
Precedence: defaults < `--config FILE.json` < flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import typing
from functools import lru_cache
from pathlib import Path

from reenact.errors import InputError


@lru_cache(maxsize=None)
def field_help(cls: type) -> dict[str, str]:
    """Trailing `# comment` of each `name: type = default` line of a dataclass's source."""
    helps = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+):[^=]+=.*?#\s*(.+)$", line)
        if m:
            helps[m.group(1)] = m.group(2).strip()
    return helps


def _parser_type(hint):
    """(argparse type, choices, is_bool) for a field's resolved type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None, None, True
    if origin is typing.Literal:
        return type(args[0]), list(args), False
    if args and type(None) in args:  # Optional[X]: "none" gives None
        inner = next(a for a in args if a is not type(None))
        return (lambda s: None if s.lower() == "none" else inner(s)), None, False
    return hint, None, False


def sections(config_cls: type) -> dict[str, type]:
    """Nested dataclass sections of a run config: name -> dataclass type."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls) if dataclasses.is_dataclass(hints[f.name])}


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type, aliases: dict[str, tuple[str, ...]],
                     only: tuple[str, ...] | None = None) -> None:
    """Add `--section.field` flags (default: unset, so files and defaults show through) plus aliases, for every
    section or those named in `only`; the help shows the defaults of `config_cls()`, the values a run starts from."""
    defaults = config_cls()
    for name, cls in sections(config_cls).items():
        if only is not None and name not in only:
            continue
        group = parser.add_argument_group(f"{name} stage")
        hints, helps, section = typing.get_type_hints(cls), field_help(cls), getattr(defaults, name)
        for f in dataclasses.fields(cls):
            dest = f"{name}.{f.name}"
            kind, choices, is_bool = _parser_type(hints[f.name])
            flags = [f"--{name}.{f.name.replace('_', '-')}", *aliases.get(dest, ())]
            text = f"{helps.get(f.name, '')} (default: {getattr(section, f.name)})"
            if is_bool:
                group.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
            else:
                group.add_argument(*flags, dest=dest, type=kind, choices=choices, default=None, help=text,
                                   metavar=None if choices else f.name.upper())


def build_config(config_cls: type, args: argparse.Namespace, base: dict | None = None):
    """`config_cls()` (the one source of defaults), then `base` (a loaded file), then the flags that were given."""
    values = {name: dict((base or {}).get(name, {})) for name in sections(config_cls)}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            values[section][name] = value
    defaults, changed = config_cls(), {}
    for name, cls in sections(config_cls).items():
        unknown = set(values[name]) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(f"config: unknown option(s) {sorted(unknown)} in section {name!r}")
        changed[name] = dataclasses.replace(getattr(defaults, name), **values[name])
    top = {k: v for k, v in (base or {}).items() if k not in changed}
    unknown = set(top) - {f.name for f in dataclasses.fields(config_cls)}
    if unknown:
        raise InputError(f"config: unknown option(s) {sorted(unknown)}")
    return dataclasses.replace(defaults, **changed, **top)


def load_config_file(path: Path) -> dict:
    """A JSON config file (as `--print-config` writes it) as a dict of sections."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON config file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config file holds one JSON object")
    return data


def config_to_json(config) -> str:
    return json.dumps(dataclasses.asdict(config), indent=2)
