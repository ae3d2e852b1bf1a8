"""Safe `{field}` substitution in action params: field reads only, nothing executed.

A param that is exactly `"{field}"` takes the field's value as is (a list stays
a list); inside a longer string the value is formatted with `str()`. `{{` and
`}}` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from grace.errors import GraceError
from processors.conditions import getter

Render = Callable[[Any], Any]  # event -> rendered value
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)?$")


class TemplateError(GraceError):
    """A template names no valid field or has stray braces."""


def fields_in(value: Any) -> list[str]:
    """Every field a param value's templates name (raises TemplateError on bad syntax)."""
    out: list[str] = []
    if isinstance(value, str):
        for m in _TOKEN.finditer(value):
            tok = m.group(0)
            if tok in ("{{", "}}"):
                continue
            name = m.group(1)
            if name is None or not _NAME.match(name):
                raise TemplateError(f"bad template {tok!r} in {value!r}: write {{field}} with a "
                                    "field name, or {{ and }} for literal braces")
            out.append(name)
    elif isinstance(value, list):
        for v in value:
            out.extend(fields_in(v))
    elif isinstance(value, dict):
        for v in value.values():
            out.extend(fields_in(v))
    return out


def _constant(text: str) -> Render:
    return lambda _ev: text


def _text_of(get: Render) -> Render:
    """A field as text inside a template: None renders as nothing."""
    return lambda ev: "" if (v := get(ev)) is None else str(v)


def compile_value(value: Any) -> Render:
    """A function rendering `value`'s templates from an event."""
    if isinstance(value, str):
        whole = _TOKEN.fullmatch(value)
        if whole and whole.group(1):
            return getter(whole.group(1))
        if "{" not in value and "}" not in value:
            return lambda _ev: value
        parts: list[Render] = []
        pos = 0
        for m in _TOKEN.finditer(value):
            if m.start() > pos:
                text = value[pos: m.start()]
                parts.append(_constant(text))
            tok = m.group(0)
            if tok in ("{{", "}}"):
                parts.append(_constant(tok[0]))
            else:
                parts.append(_text_of(getter(m.group(1))))
            pos = m.end()
        if pos < len(value):
            parts.append(_constant(value[pos:]))
        return lambda ev: "".join(p(ev) for p in parts)
    if isinstance(value, list):
        items = [compile_value(v) for v in value]
        return lambda ev: [r(ev) for r in items]
    if isinstance(value, dict):
        entries = [(k, compile_value(v)) for k, v in value.items()]
        return lambda ev: {k: r(ev) for k, r in entries}
    return lambda _ev: value


def compile_params(params: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """Params mapping -> function(event) -> rendered params."""
    entries = [(k, compile_value(v)) for k, v in params.items()]
    return lambda ev: {k: r(ev) for k, r in entries}
