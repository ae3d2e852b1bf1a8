"""Load playbook files in two passes: structure (msgspec), then meaning.

Every problem is a ConfigError `file:line: message` saying what to do. A file
with any error loads nothing; `load_paths` raises ValidationErrors with all of them.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from grace import events, yamlfile
from grace.durations import format_duration
from grace.errors import ConfigError, ValidationErrors
from grace.playbook_files import playbook_files
from processors import conditions, spec, templates
from processors.model import ESCALATE, Action, Playbook

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_RESERVED = ("playbook", "cause_ids")  # filled in by the processor
# Event types a playbook may not listen to: its own decisions (never matched) and commands.
_NOT_MATCHABLE = frozenset(t for t, c in events.PAYLOAD_CLASSES.items()
                           if c.CATEGORY in ("decision", "command"))
_MATCHABLE = sorted(set(events.PAYLOAD_CLASSES) - _NOT_MATCHABLE)
_DECISIONS = frozenset(t for t, c in events.PAYLOAD_CLASSES.items() if c.CATEGORY == "decision")
NOTIFY, DEFAULT_SINK = "notify", "default"


def load_paths(paths: list[str | Path], sinks: list[str] | None = None) -> list[Playbook]:
    """Every playbook of `paths`; raise ValidationErrors listing every problem.

    `sinks`: config `notify` sink names a `notify` may name (None: not checked)."""
    playbooks, errors = check_paths(paths, sinks)
    if errors:
        raise ValidationErrors(errors)
    return playbooks


def check_paths(paths: list[str | Path], sinks: list[str] | None = None
                ) -> tuple[list[Playbook], list[ConfigError]]:
    """(playbooks of the files without errors, every error)."""
    loaded: list[Playbook] = []
    errors: list[ConfigError] = []
    seen: dict[str, str] = {}
    for path in playbook_files(paths):
        try:
            doc = yamlfile.load(path)
        except ConfigError as exc:
            errors.append(exc)
            continue
        found, errs = check_doc(doc, seen, sinks)
        errors.extend(errs)
        if not errs:
            loaded.extend(found)
    return loaded, errors


def check_doc(doc: yamlfile.YamlDoc, seen: dict[str, str] | None = None,
              sinks: list[str] | None = None) -> tuple[list[Playbook], list[ConfigError]]:
    """Validate one parsed file; `seen` maps names to where they were defined first."""
    seen = {} if seen is None else seen
    if not isinstance(doc.data, dict):
        return [], [ConfigError("a playbook file is a mapping with a `playbooks:` list",
                                file=doc.file, line=1)]
    _fix_on_keys(doc.data)
    try:
        parsed = msgspec.convert(doc.data, spec.PlaybookFile, dec_hook=spec.dec_hook)
    except msgspec.ValidationError as exc:
        return [], [yamlfile.error_from_validation(doc, exc)]
    errors: list[ConfigError] = []
    out = []
    for i, pb in enumerate(parsed.playbooks):
        checker = _Checker(doc, i, errors, sinks)
        compiled = checker.playbook(pb)
        where = f"{doc.file}:{doc.line_of(('playbooks', i))}"
        if pb.name in seen:
            checker.err(f"playbook name {pb.name!r} is already used at {seen[pb.name]}; "
                        "names must be unique", "name")
        else:
            seen[pb.name] = where
        out.append(compiled)
    return out, errors


def _fix_on_keys(data: dict[Any, Any]) -> None:
    """YAML 1.1 reads a bare `on:` key as the boolean true; playbooks mean the word."""
    items = data.get("playbooks")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and True in item and "on" not in item:
                item["on"] = item.pop(True)


class _Checker:
    """The meaning pass for one playbook; collects errors with their lines."""

    def __init__(self, doc: yamlfile.YamlDoc, index: int, errors: list[ConfigError],
                 sinks: list[str] | None = None) -> None:
        self.doc, self.index, self.errors, self.sinks = doc, index, errors, sinks
        self.timer = False
        self.notify_only = False

    def err(self, message: str, *path: str | int) -> None:
        full = ("playbooks", self.index, *path)
        self.errors.append(ConfigError(message, file=self.doc.file, line=self.doc.line_of(full),
                                       path=".".join(map(str, full))))

    def playbook(self, pb: spec.PlaybookSpec) -> Playbook:
        self.timer = pb.every is not None and pb.on is None
        extra = [x for x in (pb.budget.then if pb.budget else None, pb.escalate) if x is not None]
        named = [spec.action_parts(item) for item in [*pb.do, *extra]]
        self.notify_only = bool(named) and all(n is not None and n[0] == NOTIFY for n in named)
        if not _NAME.match(pb.name):
            self.err(f"playbook name {pb.name!r} must be letters, digits, '-' or '_'", "name")
        on = [pb.on] if isinstance(pb.on, str) else list(pb.on or [])
        classes = self._event_types(on, "on")
        if (pb.on is None) == (pb.every is None):
            self.err("a playbook needs exactly one of `on: <event type>` (react to events) or "
                     "`every: <duration>` (a timer)", "name")
        if pb.every is not None:
            self._timer_only(pb)
        where = conditions.compile_where(pb.where, classes, self._err_at, ("where",))
        for i, f in enumerate(pb.group_by):
            why = conditions.check_field(f, classes)
            if why:
                self.err(f"{why}; fix the field name in `group_by`", "group_by", i)
        self._durations(pb)
        actions = tuple(self._action(item, classes, ("do", i), i) for i, item in enumerate(pb.do))
        if not pb.do:
            self.err("`do` is empty: list at least one action, e.g. `- restart_kernel: "
                     "{kernel: \"{kernel}\"}`", "name")
        then = self._action(pb.budget.then, classes, ("budget", "then")) \
            if pb.budget and pb.budget.then is not None else None
        escalate = self._action(pb.escalate, classes, ("escalate",)) \
            if pb.escalate is not None else None
        verify_pred = None
        verify_event = None
        if pb.verify is not None and (pb.verify.event or pb.verify.where):
            verify_event = pb.verify.event
            vclasses = self._event_types([verify_event] if verify_event else [], "verify", "event")
            if not verify_event:
                self.err("verify.where needs verify.event: the event type the fix shows as",
                         "verify", "where")
            verify_pred = conditions.compile_where(pb.verify.where, vclasses, self._err_at,
                                                   ("verify", "where"))
        return Playbook(
            name=pb.name, file=self.doc.file, line=self.doc.line_of(("playbooks", self.index)) or 0,
            on=tuple(on), every_s=_sec(pb.every), pred=where, group_fields=tuple(pb.group_by),
            group_getters=tuple(conditions.getter(f) for f in pb.group_by), for_s=_sec(pb.for_),
            count=pb.count, within_s=_sec(pb.within), actions=actions,
            cooldown_s=_sec(pb.cooldown), budget_max=pb.budget.max if pb.budget else None,
            budget_per_s=_sec(pb.budget.per) if pb.budget else None, budget_then=then,
            verify_within_s=_sec(pb.verify.within) if pb.verify else None,
            verify_event=verify_event, verify_pred=verify_pred, escalate=escalate, route=pb.route,
            enabled=pb.enabled, description=pb.description, mode=pb.mode,
            approve_within_s=_sec(pb.approve_within) or spec.APPROVE_WITHIN_S)

    def _err_at(self, message: str, path: tuple[str | int, ...]) -> None:
        self.err(message, *path)

    def _event_types(self, names: list[str], *at: str | int) -> list[type[events.Payload]]:
        classes = []
        for i, name in enumerate(names):
            here = at if len(names) == 1 else (*at, i)
            cls = events.PAYLOAD_CLASSES.get(name)
            if cls is None:
                close = difflib.get_close_matches(name, _MATCHABLE, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                known = ", ".join(sorted(events.TRIGGER_TYPES))
                self.err(f"unknown event type {name!r}; {hint}trigger types are: {known} "
                         "(`grace schema` lists every type)", *here)
            elif name in _DECISIONS and self.notify_only:
                classes.append(cls)  # telling people about a decision changes nothing: no loop
            elif name in _NOT_MATCHABLE:
                self.err(f"{name!r} is a {cls.CATEGORY} type; playbooks react to events "
                         "(triggers, results, kernel, snapshot, check ...); only a playbook whose "
                         "every action is `notify` may react to decisions", *here)
            else:
                classes.append(cls)
        return classes

    def _timer_only(self, pb: spec.PlaybookSpec) -> None:
        for key, value in (("where", pb.where), ("for", pb.for_), ("count", pb.count),
                           ("within", pb.within), ("group_by", pb.group_by or None)):
            if value is not None:
                self.err(f"`{key}` has no meaning for a timer playbook (`every`); remove it", key)
        if pb.verify is not None and pb.verify.event is None:
            # a timer answers no finding, so no condition_cleared can prove it: name the proof
            self.err("a timer playbook has no condition to clear: give `verify.event`, e.g. "
                     "`verify: {within: 2m, event: command_succeeded}`", "verify")

    def _durations(self, pb: spec.PlaybookSpec) -> None:
        if pb.approve_within is not None and pb.mode != "approve":
            self.err(f"`approve_within` has no meaning in mode {pb.mode!r}; set `mode: approve` "
                     "or remove it", "approve_within")
        for key, value in (("every", pb.every), ("for", pb.for_), ("within", pb.within),
                           ("cooldown", pb.cooldown), ("approve_within", pb.approve_within)):
            if value is not None and value <= 0:
                self.err(f"`{key}` must be longer than 0s, got {_fd(value)}", key)
        if pb.every is not None and 0 < pb.every < 1:
            self.err(f"`every: {_fd(pb.every)}` is impossible: timers tick once a second; "
                     "use 1s or more", "every")
        if (pb.count is None) != (pb.within is None):
            self.err("`count` and `within` go together: N matching events within a sliding "
                     "window, e.g. `count: 3` and `within: 5m`", "count" if pb.count else "within")
        if pb.count is not None and pb.count < 1:
            self.err(f"`count` must be at least 1, got {pb.count}", "count")
        if pb.budget is not None:
            if pb.budget.max < 1:
                self.err(f"budget.max must be at least 1, got {pb.budget.max}", "budget", "max")
            if pb.budget.per <= 0:
                self.err("budget.per must be longer than 0s", "budget", "per")
        if pb.verify is not None and pb.verify.within <= 0:
            self.err("verify.within must be longer than 0s", "verify", "within")
        b = pb.budget
        if b is not None and pb.cooldown and b.max > 1 and b.per > 0 \
                and pb.cooldown * (b.max - 1) >= b.per:
            self.err(f"budget of {b.max} per {_fd(b.per)} can never be spent with `cooldown: "
                     f"{_fd(pb.cooldown)}` (actions are at least a cooldown apart), so its `then` "
                     "never runs; lower budget.max or the cooldown", "budget")

    def _action(self, item: spec.ActionItem, classes: list[type[events.Payload]],
                at: tuple[str | int, ...], index: int = 0) -> Action:
        parts = spec.action_parts(item)
        dummy = Action(ESCALATE, events.EscalateToCodingAgent, lambda _ev: {}, index)
        if parts is None:
            self.err("an action is one mapping `action_name: {params}`, e.g. "
                     "`- scale_workers: {kernel: \"{kernel}\", by: 1}`", *at)
            return dummy
        name, params = parts
        cls = events.PAYLOAD_CLASSES.get(name)
        if name not in events.COMMAND_TYPES or cls is None:
            close = difflib.get_close_matches(name, sorted(events.COMMAND_TYPES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(sorted(events.COMMAND_TYPES))
            self.err(f"unknown action {name!r}; {hint}actions are: {known}", *at, name)
            return dummy
        assert issubclass(cls, events.Command)
        for key in _RESERVED:
            if key in params:
                self.err(f"`{key}` is set by the processor; remove it from the params",
                         *at, name, key)
                params.pop(key)
        try:
            used = templates.fields_in(params)
        except templates.TemplateError as exc:
            self.err(str(exc), *at, name)
            return dummy
        if used and not classes:
            if self.timer:
                self.err(f"template `{{{used[0]}}}`: a timer playbook has no event to read "
                         "fields from; give literal values", *at, name)
            return dummy  # the `on` error is reported already; its fields are unknowable
        for f in used:
            why = conditions.check_field(f, classes)
            if why:
                self.err(f"template `{{{f}}}`: {why}", *at, name)
                return dummy
        if name == NOTIFY:
            self._check_sink(params.get("sink", DEFAULT_SINK), (*at, name, "sink"))
        default_summary = name == ESCALATE and "summary" not in params
        action = Action(name, cls, templates.compile_params(params), index, default_summary)
        self._check_params(action, params, classes, at)
        return action

    def _check_sink(self, sink: object, at: tuple[str | int, ...]) -> None:
        """A notify names a sink of config `notify` (or `default`), literally: actuators post
        only to URLs config names, so the sink is never read from an event."""
        if not isinstance(sink, str) or "{" in sink:
            self.err(f"notify sink {sink!r} must be a sink name of config `notify` (no template)",
                     *at)
        elif self.sinks is not None and sink != DEFAULT_SINK and sink not in self.sinks:
            close = difflib.get_close_matches(sink, self.sinks, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(self.sinks) or "none configured"
            self.err(f"unknown notify sink {sink!r}; {hint}sinks in grace.yaml `notify:` are: "
                     f"{known} (`default` means the sink named default, else the first)", *at)

    def _check_params(self, action: Action, params: dict[str, Any],
                      classes: list[type[events.Payload]], at: tuple[str | int, ...]) -> None:
        samples: list[tuple[events.Event | None, bool]] = [(None, False)]
        if classes:
            samples = [(_sample_event(c, nulls), nulls) for c in classes for nulls in (False, True)]
        for ev, nulls in samples:
            rendered = action.params(ev, "sample summary")
            try:
                msgspec.convert(rendered, action.cls)
            except msgspec.ValidationError as exc:
                why = str(exc)
                m = re.search(r" - at `\$\.([^`\[.]+)", why)
                key = m.group(1) if m else None
                when = f" for {ev.type} events where optional fields are null" \
                    if ev is not None and nulls else ""
                path = (*at, action.action, key) if key and key in params else (*at, action.action)
                self.err(f"the actuator would refuse these {action.action} params{when}: "
                         f"{why}; see the fields of {action.cls.__name__} in grace/events/commands.py",
                         *path)
                return


def _fd(seconds: float) -> str:
    return "0s" if seconds <= 0 else format_duration(seconds)


def _sec(value: float | None) -> float | None:
    """Durations as plain floats: they end up in events, and msgspec encodes only floats."""
    return None if value is None else float(value)


class _AnyKeys(dict[str, str]):
    """A sample dict field: any key reads as a sample string."""

    def get(self, key: Any, default: Any = None) -> Any:
        return "sample"


def _sample(t: msgspec.inspect.Type, nulls: bool) -> Any:
    i = msgspec.inspect
    if isinstance(t, i.UnionType):
        rest = [x for x in t.types if not isinstance(x, i.NoneType)]
        if nulls and len(rest) < len(t.types):
            return None
        return _sample(rest[0], nulls)
    if isinstance(t, (i.StrType, i.AnyType)):
        return "sample"
    if isinstance(t, i.BoolType):
        return True
    if isinstance(t, i.IntType):
        return 1
    if isinstance(t, i.FloatType):
        return 1.5
    if isinstance(t, (i.ListType, i.SetType, i.FrozenSetType, i.VarTupleType)):
        return [_sample(t.item_type, nulls)]
    if isinstance(t, i.DictType):
        return _AnyKeys()
    if isinstance(t, i.DateTimeType):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(t, i.LiteralType):
        return t.values[0]
    return None


def _sample_event(cls: type[events.Payload], nulls: bool) -> events.Event:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    data = cls(**{f.name: _sample(f.type, nulls) for f in info.fields})
    return events.make_event(data, host="sample-host", source="grace/validate")
