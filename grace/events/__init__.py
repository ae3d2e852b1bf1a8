"""The typed contract: every event, command and result Grace exchanges.

Wire format: CloudEvents 1.0 structured-mode JSON. The envelope's `type` is the
tag of a msgspec tagged union, so one decode validates envelope and data. New
fields get defaults; wire names never change (tests/test_schema_compat.py).

Each payload class below names its `type` and category; `Event` envelopes are
generated from them (`EVENT_CLASSES`). Build events with `make_event()`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Union

import msgspec

# part of the contract: re-exported as events.X (the `as` form marks a re-export for mypy)
from grace.events.base import MAX_PAYLOAD as MAX_PAYLOAD
from grace.events.base import SPECVERSION as SPECVERSION
from grace.events.base import Payload as Payload
from grace.events.commands import *  # noqa: F403 - the contract is one namespace: events.X
from grace.events.commands import Command
from grace.events.decisions import *  # noqa: F403
from grace.events.findings import *  # noqa: F403
from grace.events.findings import Trigger
from grace.events.system import *  # noqa: F403

# ---------------------------------------------------------------- heartbeats (core NATS, not the log)


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """Sent on `grace.heartbeat.<host>.<name>`; only gaps become events."""

    name: str
    kind: Literal["kernel", "stage", "monitor"] = "kernel"
    pid: int = 0
    time: datetime
    seq: int = 0
    instance: int = 0  # index within the kernel's pool (GRACE_INSTANCE)


# ---------------------------------------------------------------- envelope


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True):
    """CloudEvents 1.0 structured-mode envelope; `type` is the union's tag."""

    specversion: Literal["1.0"]
    id: str
    source: str
    time: datetime
    subject: str | None = None  # omitted when None: CloudEvents forbids null attributes
    datacontenttype: Literal["application/json"]
    host: str  # CloudEvents extension attribute: the host the event is about
    data: Payload

    @property
    def type(self) -> str:
        return self.data.TYPE

    @property
    def category(self) -> str:
        return self.data.CATEGORY


class Envelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The envelope alone with raw data: for stages that keep unknown types.

    gc=False: it holds only text, a time and raw bytes, so it can never be part of a
    reference cycle; not tracking it makes decoding ~20% faster (a replay decodes millions).
    """

    specversion: str
    id: str
    source: str = ""
    type: str
    time: datetime
    subject: str | None = None
    host: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


def _payload_classes() -> list[type[Payload]]:
    found: list[type[Payload]] = []
    stack: list[type[Payload]] = [Payload]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if "TYPE" in sub.__dict__:
                found.append(sub)
    return sorted(found, key=lambda c: (c.CATEGORY, c.TYPE))


PAYLOAD_CLASSES: dict[str, type[Payload]] = {c.TYPE: c for c in _payload_classes()}
EVENT_CLASSES: dict[str, type[Event]] = {
    name: msgspec.defstruct(  # type: ignore[misc]
        f"{cls.__name__}Event", [("data", cls)], bases=(Event,), tag=name, frozen=True,
        kw_only=True, module=__name__,
    )
    for name, cls in PAYLOAD_CLASSES.items()
}
COMMAND_TYPES = frozenset(t for t, c in PAYLOAD_CLASSES.items() if issubclass(c, Command))
TRIGGER_TYPES = frozenset(t for t, c in PAYLOAD_CLASSES.items() if issubclass(c, Trigger))
# the findings that report a problem: counted as issues on the dashboard, each routed or record-only
PROBLEM_TYPES = frozenset(t for t, c in PAYLOAD_CLASSES.items() if issubclass(c, Trigger) and c.PROBLEM)

AnyEvent = Union[tuple(EVENT_CLASSES.values())]  # type: ignore[valid-type]  # noqa: UP007 - built at run time

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(AnyEvent)
_envelope_decoder = msgspec.json.Decoder(Envelope)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def finding_key(data: Trigger) -> dict[str, str]:
    """The identifying fields of a finding, as strings ('' for None)."""
    out = {}
    for name in data.KEY_FIELDS:
        value = getattr(data, name)
        out[name] = "" if value is None else str(value)
    return out


def new_id() -> str:
    """A fresh random event id."""
    return uuid.uuid4().hex


def derive_id(*parts: object) -> str:
    """A deterministic id from `parts`: re-deriving it after a crash gives the same id."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:32]


def make_event(data: Payload, *, host: str, source: str, id: str | None = None,
               subject: str | None = None, time: datetime | None = None) -> Event:
    """Wrap `data` in its typed CloudEvents envelope."""
    cls = EVENT_CLASSES[data.TYPE]
    return cls(specversion="1.0", datacontenttype="application/json", id=id or new_id(), source=source,
               time=time or now(), subject=subject, host=host, data=data)


def encode(event: Event) -> bytes:
    """CloudEvents structured-mode JSON bytes."""
    return _encoder.encode(event)


def decode(raw: bytes) -> Event:
    """Decode and validate one event; raise EventError with the reason and raw bytes."""
    from grace.errors import EventError, UnknownEventType

    if len(raw) > MAX_PAYLOAD:
        raise EventError(f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD}-byte limit", raw)
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if _type_unknown(raw):
            raise UnknownEventType(f"unknown event type: {exc}", raw) from None
        raise EventError(str(exc), raw) from None
    except msgspec.DecodeError as exc:
        raise EventError(f"not valid JSON: {exc}", raw) from None
    except UnicodeDecodeError as exc:
        raise EventError(f"invalid UTF-8 in a string: {exc}", raw) from None


class _TypeOnly(msgspec.Struct, frozen=True):
    type: object = None


_type_decoder = msgspec.json.Decoder(_TypeOnly)


def _type_unknown(raw: bytes) -> bool:
    """`raw` is a JSON object whose `type` is not one of this version's event types."""
    try:
        kind = _type_decoder.decode(raw).type
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return False
    return not isinstance(kind, str) or kind not in PAYLOAD_CLASSES


def decode_envelope(raw: bytes) -> Envelope:
    """Decode only the envelope (data kept raw); raise EventError."""
    from grace.errors import EventError

    try:
        return _envelope_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"not a CloudEvents envelope: {exc}", raw) from None


def payload_from_dict(type_name: str, data: dict[str, Any]) -> Payload:
    """Validate a plain dict as the payload of `type_name` (CLI publish, playbook tests)."""
    from grace.errors import EventError, UnknownEventType

    cls = PAYLOAD_CLASSES.get(type_name)
    if cls is None:
        known = ", ".join(sorted(PAYLOAD_CLASSES))
        raise UnknownEventType(f"unknown event type {type_name!r}; known types: {known}")
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise EventError(f"invalid data for {type_name}: {exc}") from None


def json_schema() -> dict[str, Any]:
    """JSON Schema of every event type (the union of envelopes)."""
    _, components = msgspec.json.schema_components(list(EVENT_CLASSES.values()))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Grace events (CloudEvents 1.0 structured mode)",
        "anyOf": [{"$ref": f"#/$defs/{c.__name__}"} for c in EVENT_CLASSES.values()],
        "$defs": components,
    }
