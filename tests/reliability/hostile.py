"""A corpus of malformed and hostile messages, for the stages' rejection paths."""

from __future__ import annotations

import json
import random

from grace import events

VALID_ENVELOPE = {
    "type": "cpu_saturation", "specversion": "1.0", "id": "x", "source": "grace/h/test",
    "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "host": "h",
    "data": {"scope": "system", "percent": 95.0, "threshold": 90.0, "samples": 3},
}


def _with(**changes: object) -> bytes:
    doc = json.loads(json.dumps(VALID_ENVELOPE))
    doc.update(changes)
    return json.dumps(doc).encode()


def _without(key: str) -> bytes:
    doc = dict(VALID_ENVELOPE)
    del doc[key]
    return json.dumps(doc).encode()


def corpus(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """`n` (kind, raw bytes) hostile messages, deterministic for a seed."""
    rnd = random.Random(seed)
    valid = json.dumps(VALID_ENVELOPE).encode()
    makers = [
        ("random bytes", lambda: rnd.randbytes(rnd.randint(1, 300))),
        ("truncated json", lambda: valid[: rnd.randint(1, len(valid) - 1)]),
        ("wrong type", lambda: _with(data={**VALID_ENVELOPE["data"], "percent": "hot"})),  # type: ignore[dict-item]
        ("unknown type", lambda: _with(type=f"no_such_event_{rnd.randint(0, 9999)}")),
        ("missing id", lambda: _without("id")),
        ("missing time", lambda: _without("time")),
        ("bad time", lambda: _with(time="yesterday")),
        ("bad specversion", lambda: _with(specversion="0.3")),
        ("deep nesting", lambda: b'{"a":' * 600 + b"1" + b"}" * 600),
        ("invalid utf-8", lambda: valid.replace(b"system", b"sys\xff\xfetem")),
        ("null data", lambda: _with(data=None)),
        ("array", lambda: b"[1,2,3]"),
        ("empty", lambda: b""),
        ("huge payload", lambda: _with(data={**VALID_ENVELOPE["data"],  # type: ignore[dict-item]
                                             "percent": "9" * (events.MAX_PAYLOAD // 2)})
         if rnd.random() < 0.05 else b"{" * 50_000),
        ("missing data field", lambda: _with(data={"scope": "system"})),
    ]
    out = []
    for i in range(n):
        kind, make = makers[i % len(makers)]
        out.append((kind, make()))
    return out
