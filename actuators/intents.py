"""Intent records: what an actuator set out to do, written before it acts.

One JetStream KV entry per command (bucket topology.INTENTS_BUCKET, key
`<host>.<command id>`): `started` with the command and the target computed
once, then `done` with the encoded result. A command redelivered after a crash
finds its record and finishes toward the recorded target, or re-publishes the
recorded result, instead of acting twice.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from grace import events, topology
from grace.bus import Bus

State = Literal["started", "done"]
_KEY_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class Intent(msgspec.Struct, kw_only=True):
    """One command's intent record."""

    command_id: str
    action: str
    state: State
    command: msgspec.Raw = msgspec.Raw(b"null")  # the command event as received
    target: dict[str, Any] = {}  # the world the action aims for, computed once
    started_at: str = ""
    attempts: int = 1
    steps: list[str] = []  # progress notes written while acting (e.g. "spawned pid 123")
    result_id: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")  # the result event, re-published on redelivery
    published: bool = False  # the broker acked the result: a redelivery publishes nothing


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Intent)


class IntentStore:
    """The intents of one host's actuator in the KV bucket."""

    def __init__(self, kv: KeyValue, host: str) -> None:
        self.kv, self.host = kv, host

    @classmethod
    async def open(cls, bus: Bus, host: str) -> IntentStore:
        return cls(await bus.js.key_value(topology.INTENTS_BUCKET), host)

    def key(self, command_id: str) -> str:
        # an id injected by hand may hold characters a KV key cannot: hash those
        token = command_id if _KEY_TOKEN.match(command_id) else events.derive_id("intent", command_id)
        return f"{self.host}.{token}"

    async def get(self, command_id: str) -> Intent | None:
        try:
            entry = await self.kv.get(self.key(command_id))
        except KeyNotFoundError:
            return None
        return _dec.decode(entry.value) if entry.value else None

    async def put(self, intent: Intent) -> None:
        await self.kv.put(self.key(intent.command_id), _enc.encode(intent))

    async def open_intents(self) -> list[Intent]:
        """Intents of this host left in `started` (an actuator died while acting)."""
        out: list[Intent] = []
        watcher = await self.kv.watch(f"{self.host}.*", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    intent = _dec.decode(entry.value)
                    if intent.state == "started":
                        out.append(intent)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
        return out
