"""Helpers for processor tests: events at virtual times, playbooks from YAML text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from grace import events, yamlfile
from processors import validate
from processors.matcher import Matcher
from processors.model import Playbook

if TYPE_CHECKING:
    from grace.bus import Bus

T0 = 1_800_000_000.0  # virtual time zero (2027-01-15)


def at(seconds: float) -> datetime:
    """A virtual instant: `seconds` after T0."""
    return datetime.fromtimestamp(T0 + seconds, UTC)


def ev(payload: events.Payload, t: float, host: str = "web-1", id: str | None = None
       ) -> events.Event:
    return events.make_event(payload, host=host, source="grace/test/producer", time=at(t), id=id)


def playbooks(text: str, name: str = "test.yaml") -> list[Playbook]:
    """Validate YAML text; fail the test with the errors if it is invalid."""
    found, errors = validate.check_doc(yamlfile.loads(text, name))
    assert not errors, "\n".join(map(str, errors))
    return found


def matcher(text: str) -> Matcher:
    return Matcher(playbooks(text), host="grace-1", source="grace/grace-1/processor")


def run(m: Matcher, *evs: events.Event) -> list[events.Event]:
    """Feed events in order (ticking to each one's time) and return what was emitted."""
    out: list[events.Event] = []
    for e in evs:
        m.tick(e.time.timestamp())
        m.process(e)
        out.extend(m.take())
    return out


def commands(out: list[events.Event]) -> list[events.Event]:
    return [e for e in out if e.data.CATEGORY == "command"]


def of_type(out: list[events.Event], type_: str) -> list[events.Event]:
    return [e for e in out if e.type == type_]


def gap(kernel: str = "api") -> events.KernelHeartbeatGap:
    return events.KernelHeartbeatGap(kernel=kernel, timeout_s=15.0, trigger="health_signal")


def cleared(condition: str, **key: str) -> events.ConditionCleared:
    return events.ConditionCleared(condition=condition, key=key)


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


async def stored(b: Bus, stream: str, subject: str) -> list[events.Event]:
    """Every message of `stream` on `subject` (wildcards allowed), decoded, in order."""
    from nats.js.errors import NotFoundError

    out: list[events.Event] = []
    seq = 1
    while True:
        try:
            msg = await b.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return out
        out.append(events.decode(msg.data or b""))
        seq = (msg.seq or seq) + 1


RESTART_BUDGET = """
playbooks:
  - name: restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
    budget: {max: 3, per: 1h, then: escalate_to_coding_agent}
"""
