"""notify: post a message to a sink of config `notify` (cloudevents, slack, pagerduty).

`plan` picks the sink and renders the body once (kept in the intent, so a resumed
delivery posts the same bytes, and a receiver can dedupe by the CloudEvent id or
PagerDuty's dedup_key). `apply` posts it to the URL config names for that sink, never
one from an event, without following redirects. 429, 5xx and connection errors are
retried with backoff up to `retry.max`; another 4xx fails at once with the body's reason.
A 2xx is noted in the intent before the result is written: an actuator killed after
that point finds the note on resume and does not post again.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp

from actuators.actions.base import Action, ActionContext, Details, Target
from grace import events
from grace.config import Config, NotifySink
from grace.errors import ActionError

DEFAULT = "default"
DELIVERED = "delivered"  # the intent note of an acknowledged delivery
CONTENT_TYPES = {"cloudevents": "application/cloudevents+json", "slack": "application/json",
                 "pagerduty": "application/json"}
MAX_RETRY_AFTER_S = 300.0
REASON_CHARS = 300


def sink_for(cfg: Config, name: str) -> NotifySink:
    """The sink `name` of config `notify`; `default` is the sink named so, else the first."""
    for s in cfg.notify:
        if s.name == name:
            return s
    if name == DEFAULT and cfg.notify:
        return cfg.notify[0]
    known = ", ".join(s.name for s in cfg.notify) or "none"
    raise ActionError(f"notify: no sink {name!r} in config `notify` (sinks: {known}); add it to "
                      "grace.yaml or name a configured sink in the playbook")


def routing_key(sink: NotifySink) -> str:
    """The PagerDuty integration key, from the config or its environment variable."""
    if sink.routing_key:
        return sink.routing_key
    value = os.environ.get(sink.routing_key_env or "", "")
    if not value:
        raise ActionError(f"notify: sink {sink.name!r} reads its PagerDuty routing key from "
                          f"${sink.routing_key_env}, which is not set in the actuator's "
                          "environment; export it before `grace up`/`grace act`")
    return value


def body_of(ctx: ActionContext, sink: NotifySink, cmd: events.Notify) -> dict[str, Any]:
    """The request body in the sink's format (a pagerduty body lacks routing_key: a secret
    never goes into the intent or the log; `apply` adds it)."""
    host, about = ctx.cfg.host, cmd.target or cmd.playbook or ctx.cfg.host
    if sink.format == "slack":
        context = f"*{cmd.severity}* · playbook `{cmd.playbook or '-'}` · {about} · host {host}"
        return {"text": cmd.text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": cmd.text[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}]}
    if sink.format == "pagerduty":
        out: dict[str, Any] = {"event_action": cmd.event_action, "dedup_key": about[:255],
                               "client": "Grace"}
        if cmd.event_action == "trigger":
            out["payload"] = {"summary": cmd.text[:1024], "source": host,
                              "severity": cmd.severity, "component": cmd.playbook or "grace",
                              "custom_details": {"command_id": ctx.command_id,
                                                 "cause_ids": cmd.cause_ids, "target": cmd.target}}
        return out
    ev = events.make_event(cmd, host=host, source=f"grace/{host}/actuator", id=ctx.command_id,
                           time=ctx.clock())
    loaded: dict[str, Any] = json.loads(events.encode(ev))
    return loaded


async def plan(ctx: ActionContext, cmd: events.Notify) -> Target:
    sink = sink_for(ctx.cfg, cmd.sink)
    if sink.format == "pagerduty":
        routing_key(sink)  # refuse before anything is recorded as started
    return {"sink": sink.name, "format": sink.format, "body": body_of(ctx, sink, cmd)}


def _reason(text: str) -> str:
    """What a refusing sink said: a JSON body's message/errors, else its text."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text.strip()[:REASON_CHARS] or "(empty body)"
    if isinstance(doc, dict):
        parts = [str(doc[k]) for k in ("message", "error", "errors", "status") if doc.get(k)]
        if parts:
            return "; ".join(parts)[:REASON_CHARS]
    return text.strip()[:REASON_CHARS]


def _wait(retry_after: str | None, delay: float) -> float:
    """Seconds before the next try: the sink's Retry-After (bounded) when it gives one."""
    try:
        asked = float(retry_after) if retry_after else None
    except ValueError:
        asked = None
    return min(asked, MAX_RETRY_AFTER_S) if asked is not None and asked >= 0 else delay


async def apply(ctx: ActionContext, cmd: events.Notify, target: Target) -> Details:
    done = [s for s in ctx.steps() if s.startswith(DELIVERED)]
    if done:  # acknowledged before a crash: never post twice
        return {"sink": target["sink"], "format": target["format"], "delivered": done[-1],
                "status": int(done[-1].rsplit(" ", 1)[-1]), "posted_again": False}
    sink = sink_for(ctx.cfg, target["sink"])  # the URL comes from config, now
    body = dict(target["body"])
    if sink.format == "pagerduty":
        body = {"routing_key": routing_key(sink), **body}
    data = json.dumps(body).encode()
    headers = {"Content-Type": CONTENT_TYPES[sink.format]}
    policy = sink.retries
    delay, tries = float(policy.backoff), 0
    timeout = aiohttp.ClientTimeout(total=float(sink.timeout))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            tries += 1
            retry_after: str | None = None
            try:
                async with session.post(sink.url, data=data, headers=headers,
                                        allow_redirects=False) as resp:
                    status, text = resp.status, await resp.text(errors="replace")
                    retry_after = resp.headers.get("Retry-After")
                failure = f"HTTP {status}: {_reason(text)}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                status, failure = 0, f"{type(exc).__name__}: {str(exc) or 'timed out'}"
            if 200 <= status < 300:
                await ctx.note(f"{DELIVERED} after {tries} tries: HTTP {status}")
                return {"sink": sink.name, "format": sink.format, "status": status,
                        "tries": tries}
            if status and status != 429 and status < 500:
                raise ActionError(f"notify: sink {sink.name!r} refused the {sink.format} body "
                                  f"with {failure} (try {tries}, not retried); fix the sink's "
                                  "url or key in grace.yaml `notify:`, or the playbook's text",
                                  {"status": status, "tries": tries})
            if tries > policy.max:
                raise ActionError(f"notify: sink {sink.name!r} still failing after {tries} tries "
                                  f"(last: {failure}); check that {sink.format} endpoint is up, "
                                  "or raise its `retry.max`", {"status": status, "tries": tries})
            wait = _wait(retry_after, delay)
            await ctx.note(f"try {tries}: {failure}; retrying in {wait:g}s")
            await asyncio.sleep(wait)
            delay *= policy.factor


ACTION = Action(events.Notify, plan, apply, lambda c: c.target or c.sink)
