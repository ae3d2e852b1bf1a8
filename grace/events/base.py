"""The base of every event's data, and the wire limits."""

from __future__ import annotations

from typing import ClassVar

import msgspec

SPECVERSION = "1.0"
MAX_PAYLOAD = 1024 * 1024  # NATS' default max_payload; larger events are rejected


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every event's `data`."""

    TYPE: ClassVar[str]
    CATEGORY: ClassVar[str]
