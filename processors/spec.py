"""The playbook file's structure (first validation pass): msgspec, unknown keys forbidden.

Meaning (known event types, fields, actions, params) is checked in `validate`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from grace.durations import Duration, parse_duration

Route = Literal["self_healing", "coding_agent"]
Mode = Literal["act", "observe", "approve"]
APPROVE_WITHIN_S = 900.0
ActionItem = str | dict[str, dict[str, Any] | None]  # `resume_load` or `{scale_workers: {by: 1}}`


class _Spec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class BudgetSpec(_Spec, frozen=True):  # frozen restated for mypy; msgspec inherits it
    """At most `max` actions per `per` period per target; then run `then` once."""

    max: int
    per: Duration
    then: ActionItem | None = None


class VerifySpec(_Spec, frozen=True):  # frozen restated for mypy; msgspec inherits it
    """The fix must show (condition_cleared, or `event` + `where`) within `within`."""

    within: Duration
    event: str | None = None
    where: dict[str, Any] | None = None


class PlaybookSpec(_Spec, frozen=True):  # frozen restated for mypy; msgspec inherits it
    name: str
    description: str = ""
    on: str | list[str] | None = None
    every: Duration | None = None
    where: dict[str, Any] | None = None
    for_: Duration | None = msgspec.field(default=None, name="for")
    count: int | None = None
    within: Duration | None = None
    group_by: list[str] = []
    do: list[ActionItem] = []
    cooldown: Duration | None = None
    budget: BudgetSpec | None = None
    verify: VerifySpec | None = None
    escalate: ActionItem | None = None
    route: Route = "self_healing"
    enabled: bool = True
    mode: Mode = "act"  # observe: record what it would send; approve: wait for a person's yes
    approve_within: Duration | None = None  # mode approve: how long a request waits (15m)


class PlaybookFile(_Spec, frozen=True):  # frozen restated for mypy; msgspec inherits it
    playbooks: list[PlaybookSpec]


def dec_hook(tp: type, obj: Any) -> Any:
    if tp is Duration:
        return parse_duration(obj)
    raise NotImplementedError(f"no decoder for {tp!r}")


def action_parts(item: ActionItem) -> tuple[str, dict[str, Any]] | None:
    """(action, params) of one `do` item, or None when the mapping is not one key."""
    if isinstance(item, str):
        return item, {}
    if len(item) != 1:
        return None
    (name, params), = item.items()
    return name, dict(params or {})
