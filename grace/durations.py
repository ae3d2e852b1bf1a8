"""Durations as operators write them: ``500ms``, ``30s``, ``5m``, ``1h``, ``7d``."""

from __future__ import annotations

import re

from grace.errors import InvalidValue

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


class Duration(float):
    """Seconds, parsed from a string like ``30s``; a plain number means seconds."""

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def parse_duration(value: object) -> Duration:
    """Parse ``30s`` / ``5m`` / ``1h`` / a number of seconds; InvalidValue says what is allowed."""
    if isinstance(value, bool):
        raise InvalidValue(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidValue(f"a duration cannot be negative, got {value!r}")
        return Duration(value)
    if isinstance(value, str):
        match = _RE.match(value)
        if match:
            return Duration(float(match.group(1)) * _UNITS[match.group(2)])
    raise InvalidValue(f"expected a duration like 500ms, 30s, 5m, 1h or 7d, got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` (``90`` -> ``90s``, ``3600`` -> ``1h``)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def fmt(seconds: float) -> str:
    """A duration for messages: `0s` for nothing, else `format_duration`."""
    return "0s" if seconds <= 0 else format_duration(seconds)
