"""`where` conditions compiled to plain Python closures over an event (no eval of strings).

A condition is a mapping: `field: {op: value}` (several keys: all must hold),
`field: value` (eq) or `field: [..]` (in), and `all: [..]`, `any: [..]`,
`not: {..}`. A field is a payload field, or `field.key` inside a dict field.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import msgspec

from grace import events

Pred = Callable[[Any], bool]
Getter = Callable[[Any], Any]
ErrFn = Callable[[str, tuple[str | int, ...]], None]

OPS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "regex", "exists")
_CMP = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def field_kinds(cls: type[events.Payload]) -> dict[str, msgspec.inspect.Type]:
    """Payload field name -> msgspec type info (Optional unwrapped)."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, msgspec.inspect.Type] = {}
    for f in info.fields:
        t = f.type
        if isinstance(t, msgspec.inspect.UnionType):
            rest = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
            t = rest[0] if len(rest) == 1 else t
        out[f.name] = t
    return out


def check_field(path: str, classes: list[type[events.Payload]]) -> str | None:
    """Why `path` cannot be read from every class in `classes`, or None when it can."""
    head, _, rest = path.partition(".")
    if path == "host":
        return None
    for cls in classes:
        kinds = field_kinds(cls)
        if head not in kinds:
            known = ", ".join(sorted(kinds))
            return f"event type {cls.TYPE} has no field `{head}`; its fields are: {known}, host"
        if rest and not isinstance(kinds[head], (msgspec.inspect.DictType, msgspec.inspect.AnyType)):
            return f"`{head}` of {cls.TYPE} is not a mapping, so `{path}` cannot be read"
    return None


def getter(path: str) -> Getter:
    """A fast reader of `path` from an event: `host`, a data field, or `field.key` in a dict."""
    if path == "host":
        return operator.attrgetter("host")
    head, _, rest = path.partition(".")
    attr = operator.attrgetter(f"data.{head}")
    if not rest:
        return attr

    def get(data: Any) -> Any:
        value = attr(data)
        return value.get(rest) if isinstance(value, dict) else None
    return get


def compile_where(node: Any, classes: list[type[events.Payload]], err: ErrFn,
                  at: tuple[str | int, ...]) -> Pred:
    """Compile a `where` mapping; report problems through `err(message, path)`."""
    if node is None:
        return _true
    if not isinstance(node, dict) or not node:
        err("a condition must be a non-empty mapping, e.g. {percent: {gt: 90}}", at)
        return _true
    preds: list[Pred] = []
    for key, value in node.items():
        here = (*at, key)
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                err(f"`{key}` takes a non-empty list of conditions", here)
                continue
            parts = [compile_where(v, classes, err, (*here, i)) for i, v in enumerate(value)]
            preds.append(_all(parts) if key == "all" else _any(parts))
        elif key == "not":
            inner = compile_where(value, classes, err, here)
            preds.append(_not(inner))
        else:
            why = check_field(str(key), classes)
            if why:
                err(f"{why}; fix the field name in `where`", here)
                continue
            preds.extend(_field_preds(str(key), value, err, here))
    return _all(preds)


def _field_preds(path: str, spec: Any, err: ErrFn, at: tuple[str | int, ...]) -> list[Pred]:
    get = getter(path)
    if not isinstance(spec, dict):
        spec = {"in": spec} if isinstance(spec, list) else {"eq": spec}
    out: list[Pred] = []
    for op, arg in spec.items():
        pred = _op(get, str(op), arg, _err_at(err, (*at, op)))
        if pred is not None:
            out.append(pred)
    return out


def _op(get: Getter, op: str, arg: Any, err: Callable[[str], None]) -> Pred | None:
    if op == "eq":
        return lambda d: get(d) == arg
    if op == "ne":
        return lambda d: get(d) != arg
    if op in _CMP:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            err(f"`{op}` compares numbers; got {arg!r}")
            return None
        cmp = _CMP[op]

        def compare(d: Any) -> bool:
            value = get(d)
            try:
                return value is not None and cmp(value, arg)
            except TypeError:
                return False
        return compare
    if op in ("in", "not_in"):
        if not isinstance(arg, list):
            err(f"`{op}` takes a list, e.g. [a, b]; got {arg!r}")
            return None
        try:
            choices: Any = frozenset(arg)
        except TypeError:
            choices = tuple(arg)
        if op == "in":
            return lambda d: get(d) in choices
        return lambda d: get(d) not in choices
    if op == "regex":
        if not isinstance(arg, str):
            err(f"`regex` takes a string pattern; got {arg!r}")
            return None
        try:
            search = re.compile(arg).search
        except re.error as exc:
            err(f"invalid regex {arg!r}: {exc}")
            return None
        return lambda d: (v := get(d)) is not None and search(str(v)) is not None
    if op == "exists":
        if not isinstance(arg, bool):
            err(f"`exists` takes true or false; got {arg!r}")
            return None
        return (lambda d: get(d) is not None) if arg else (lambda d: get(d) is None)
    err(f"unknown operator `{op}`; use one of: {', '.join(OPS)}")
    return None


def _true(_d: Any) -> bool:
    return True


def _all(preds: list[Pred]) -> Pred:
    if not preds:
        return _true
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda d: a(d) and b(d)
    return lambda d: all(p(d) for p in preds)


def _not(pred: Pred) -> Pred:
    return lambda d: not pred(d)


def _err_at(err: ErrFn, at: tuple[str | int, ...]) -> Callable[[str], None]:
    """`err` with the location fixed: what an operator's check reports against."""
    return lambda message: err(message, at)


def _any(preds: list[Pred]) -> Pred:
    if len(preds) == 1:
        return preds[0]
    return lambda d: any(p(d) for p in preds)
