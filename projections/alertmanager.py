"""Alertmanager's webhook payload (version 4) and the events one request becomes.

Each alert becomes an `external_alert`; a resolved one also a `condition_cleared` with the
same key. Ids derive from fingerprint + startsAt + status, so Alertmanager's re-sends of a
notification and its HA peers' copies of it are stored once (JetStream's duplicate window).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

import msgspec

from grace import events
from grace.errors import EventError

TRIGGER = "alertmanager"  # the `trigger` of the events: who found it
SEVERITIES = ("info", "warning", "critical")


class AmAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert of a notification (unknown fields, e.g. Grafana's silenceURL, are ignored)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_at: datetime = msgspec.field(name="startsAt")
    ends_at: datetime | None = msgspec.field(default=None, name="endsAt")
    generator_url: str = msgspec.field(default="", name="generatorURL")
    fingerprint: str = ""


class AmNotification(msgspec.Struct, frozen=True, kw_only=True):
    """The webhook body Alertmanager POSTs (webhook_config, payload version 4)."""

    version: Literal["4"]
    group_key: str = msgspec.field(default="", name="groupKey")
    truncated_alerts: int = msgspec.field(default=0, name="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: str
    group_labels: dict[str, str] = msgspec.field(default_factory=dict, name="groupLabels")
    common_labels: dict[str, str] = msgspec.field(default_factory=dict, name="commonLabels")
    common_annotations: dict[str, str] = msgspec.field(default_factory=dict,
                                                       name="commonAnnotations")
    external_url: str = msgspec.field(default="", name="externalURL")
    alerts: list[AmAlert]


_decoder = msgspec.json.Decoder(AmNotification)


def decode(raw: bytes) -> AmNotification:
    """Decode and validate a webhook body; raise EventError with the reason."""
    try:
        note = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise EventError(f"not an Alertmanager webhook payload (version 4): {exc}", raw) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise EventError(f"not valid JSON: {exc}", raw) from None
    if note.truncated_alerts < 0:
        raise EventError(f"truncatedAlerts is {note.truncated_alerts}; it counts alerts, so it "
                         "is 0 or more", raw)
    return note


def fingerprint_of(alert: AmAlert) -> str:
    """Alertmanager's fingerprint, or a hash of the sorted labels when the sender gave none."""
    if alert.fingerprint:
        return alert.fingerprint
    text = json.dumps(alert.labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _when(t: datetime | None) -> datetime | None:
    """None for Alertmanager's "no time" (0001-01-01T00:00:00Z)."""
    if t is None or t.year <= 1:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def alert_id(alert: AmAlert) -> str:
    """The event id (and NATS message id) of an alert: fingerprint + startsAt + status."""
    return events.derive_id(TRIGGER, fingerprint_of(alert), alert.starts_at.isoformat(),
                            alert.status)


def to_payloads(note: AmNotification) -> list[tuple[str, events.Payload]]:
    """(event id, payload) for every event the notification records, in order."""
    out: list[tuple[str, events.Payload]] = []
    for a in note.alerts:
        fp = fingerprint_of(a)
        name = a.labels.get("alertname", "")
        sev = a.labels.get("severity", "warning")
        starts, ends = _when(a.starts_at), _when(a.ends_at)
        alert = events.ExternalAlert(
            trigger=TRIGGER, severity=sev if sev in SEVERITIES else "warning",  # type: ignore[arg-type]
            status=a.status, alertname=name, labels=a.labels, annotations=a.annotations,
            fingerprint=fp, starts_at=starts, ends_at=ends, generator_url=a.generator_url,
            receiver=note.receiver, group_key=note.group_key, common_labels=note.common_labels,
            external_url=note.external_url, truncated_alerts=note.truncated_alerts)
        out.append((alert_id(a), alert))
        if a.status == "resolved":
            active = (ends - starts).total_seconds() if starts and ends else None
            cleared = events.ConditionCleared(
                trigger=TRIGGER, condition=events.ExternalAlert.TYPE,
                key=events.finding_key(alert),
                active_s=round(active, 3) if active is not None and active >= 0 else None)
            out.append((events.derive_id(TRIGGER, "cleared", fp, a.starts_at.isoformat()), cleared))
    return out
