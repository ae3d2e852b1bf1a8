"""YAML loading that remembers line numbers, so errors can say file:line.

msgspec reports a failing field as a path like ``$.kernels[0].name``; `locate`
maps that path back to the line of the YAML node it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml

from grace.errors import ConfigError

_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")
_PART_RE = re.compile(r"\.([^.\[]+)|\[(\d+)\]")

PathKey = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML file plus the line of every key and item in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def load(path: str | Path) -> YamlDoc:
    """Parse a YAML file; a syntax error becomes a ConfigError with file:line."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found; check the path", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", file=name) from None
    return loads(text, name)


def loads(text: str, name: str = "<string>") -> YamlDoc:
    """Parse YAML text named `name` for error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"invalid YAML: {exc.problem or exc}", file=name, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=name) from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(name, data, lines)


def split_path(path: str) -> PathKey:
    """Turn msgspec's ``$.a[0].b`` into ``("a", 0, "b")``."""
    parts: list[str | int] = []
    for name, index in _PART_RE.findall(path.removeprefix("$")):
        parts.append(int(index) if index else name)
    return tuple(parts)


def error_from_validation(doc: YamlDoc, exc: msgspec.ValidationError,
                          base: PathKey = ()) -> ConfigError:
    """Turn a msgspec ValidationError on (part of) `doc` into file:line form."""
    message = str(exc)
    match = _PATH_RE.search(message)
    rel: PathKey = split_path(match.group(1)) if match else ()
    if match:
        message = message[: match.start()]
    full = (*base, *rel)
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        full = (*full, unknown.group(1))
        message = f"unknown key `{unknown.group(1)}`; remove it or fix its spelling"
    dotted = ".".join(str(p) for p in full) or None
    return ConfigError(message, file=doc.file, line=doc.line_of(full), path=dotted)
