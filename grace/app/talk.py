"""The terminal of `grace up` after boot: one line per incident step, read from the log.

Like `docker compose up` prints its services' logs: a finding as it first appears, the
decision on it (action, suppressed and why, observed, awaiting approval), the command's
result with its duration, the verification, the finding clearing. A finding the monitor
re-publishes while it lasts, or the same suppression again, is said once. `--quiet` skips it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import click

from grace import events, topology
from grace.bus import Bus
from grace.consume import Delivery, PullConsumer
from grace.errors import EventError
from grace.logwatch import last_seq

log = logging.getLogger(__name__)
WIDTH = 220  # a line longer than this is cut: the log has the whole event


def _decode(raw: bytes) -> events.Event | None:
    """The event, or None for a type this version does not know (nothing to say about it)."""
    try:
        return events.decode(raw)
    except EventError:
        return None


def _key_text(key: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items() if v)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


class Talk:
    """Turns events into lines; remembers what it said so a repeat is not said again."""

    def __init__(self) -> None:
        self.active: set[str] = set()  # findings said and not cleared: type + host + key
        self.suppressed: set[tuple[str, str, str]] = set()  # (playbook, target, reason) said

    def line(self, ev: events.Event) -> str | None:
        """The line for `ev`, or None when it is not an incident step (or was said)."""
        text = self._text(ev)
        if text is None:
            return None
        t = ev.time.astimezone().strftime("%H:%M:%S")
        out = f"{t} {ev.host} | {text}"
        return out if len(out) <= WIDTH else out[: WIDTH - 3] + "..."

    def _text(self, ev: events.Event) -> str | None:
        d = ev.data
        if isinstance(d, events.ConditionCleared):
            self.active.discard(self._finding_id(d.condition, ev.host, d.key))
            after = f" after {d.active_s:.0f}s" if d.active_s is not None else ""
            return f"cleared    {d.condition} {_key_text(d.key)}{after}"
        if isinstance(d, events.ExternalAlert) and d.status == "resolved":
            return None  # its condition_cleared says it
        if isinstance(d, events.Trigger) and d.PROBLEM:
            fid = self._finding_id(d.TYPE, ev.host, events.finding_key(d))
            if fid in self.active:
                return None
            self.active.add(fid)
            return f"finding    {d.TYPE} {_key_text(events.finding_key(d))}{_detail(d)}"
        if isinstance(d, events.CommandIssued):
            self.suppressed = {s for s in self.suppressed if s[:2] != (d.playbook, d.target)}
            how = " (escalation)" if d.escalation else ""
            return f"action     {d.action} on {d.target}{how} by playbook {d.playbook}"
        if isinstance(d, events.DecisionSuppressed):
            said = (d.playbook, d.target, d.reason)
            if said in self.suppressed:
                return None
            self.suppressed.add(said)
            why = f": {d.detail}" if d.detail else ""
            return f"suppressed {d.playbook} on {d.target}: {d.reason}{why}"
        if isinstance(d, events.DecisionObserved):
            return f"observed   {d.playbook} would run {d.action} on {d.target} (observe mode)"
        if isinstance(d, events.ApprovalRequested):
            return (f"approval   {d.action} on {d.target} waits: grace approve {d.command_id} "
                    f"(playbook {d.playbook})")
        if isinstance(d, events.CommandSucceeded):
            return f"result     {d.action} on {d.target} succeeded in {_fmt_ms(d.duration_ms)}"
        if isinstance(d, events.CommandFailed):
            return f"result     {d.action} on {d.target} FAILED in {_fmt_ms(d.duration_ms)}: {d.reason}"
        if isinstance(d, events.CommandSkipped):
            return f"result     {d.action} on {d.target} skipped: {d.reason}"
        if isinstance(d, events.VerifyPassed):
            return f"verified   {d.playbook} on {d.target}: the fix holds"
        if isinstance(d, events.VerifyFailed):
            esc = f"; escalated: {d.escalation}" if d.escalation else ""
            return (f"NOT fixed  {d.playbook} on {d.target} within {d.within_s:.0f}s"
                    f"{': ' + d.detail if d.detail else ''}{esc}")
        return None

    @staticmethod
    def _finding_id(type_: str, host: str, key: dict[str, str]) -> str:
        return f"{type_} {host} {json.dumps(key, sort_keys=True)}"


def _detail(d: events.Trigger) -> str:
    """A finding's own words, when it has some."""
    if isinstance(d, events.ExternalAlert):
        summary = d.annotations.get("summary", "")
        return f" ({d.status}{': ' + summary if summary else ''})"
    reason = getattr(d, "reason", "")
    return f": {reason}" if isinstance(reason, str) and reason else ""


class Talker:
    """Follows the log of `host` from its current end and prints a line per incident step."""

    def __init__(self, bus: Bus, host: str, echo: Callable[[str], None] = click.echo) -> None:
        self.bus, self.echo, self.talk = bus, echo, Talk()
        self.filter = topology.event_filter("*", "*", host)
        self._consumer: PullConsumer[events.Event | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Talker:
        """Follow from the log's end; a failure is logged and leaves Grace running, silent."""
        try:
            start = await last_seq(self.bus) + 1
        except Exception as exc:  # noqa: BLE001 - the terminal's lines never stop Grace
            log.warning("cannot follow the log to print incident steps (%r); see "
                        "`grace events tail` instead", exc)
            return self

        async def ensure(next_seq: int) -> str:
            return await topology.ensure_consumer(
                self.bus.js, topology.EVENTS, topology.reader_consumer_config(next_seq, self.filter))

        self._consumer = PullConsumer(self.bus, topology.EVENTS, ensure, self._show,
                                      decoder=_decode, stage="talk", ack="none", batch=500,
                                      start_seq=start)
        self._task = asyncio.create_task(self._consumer.run(), name="talk")
        return self

    async def _show(self, items: list[Delivery[events.Event | None]]) -> None:
        for d in items:
            if d.item is not None and (text := self.talk.line(d.item)) is not None:
                self.echo(text)

    async def close(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
