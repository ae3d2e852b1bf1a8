"""The console's JSON API over a real projection (DuckDB file) and, for actions, a real NATS
server: what it shows, how a chain is linked, and that actions need the token and go through
the same checks as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nats

from grace import events, operator_actions, topology
from projections.console import openapi
from tests.projections.console_support import console


async def test_overview_incidents_playbooks_snapshots_from_the_projection(tmp_path: Path) -> None:
    async with console(tmp_path, None) as (client, _projector, _token):
        o = await (await client.get("/api/overview")).json()
        assert o["dashboard"]["approvals"]["pending"] == 1
        assert o["dashboard"]["approvals"]["items"][0]["command_id"] == "c9"
        assert {(k["kernel"], k["instance"], k["state"]) for k in o["kernels"]} >= {
            ("batch", 0, "failed"), ("worker", 1, "suspended")}
        assert {s["component"] for s in o["stages"]} == {"sample", "produce", "process"}

        inc = await (await client.get("/api/incidents")).json()
        rows = inc["items"]
        assert [r["seq"] for r in rows] == sorted((r["seq"] for r in rows), reverse=True)
        by_decision = {(r["decision"], r["command_id"]): r for r in rows}
        waiting = by_decision[("approval_requested", "c9")]
        assert waiting["outcome"] == "awaiting_approval" and waiting["finding"] == "config_drift"
        acted = by_decision[("command_issued", "c1")]
        assert acted["outcome"] == "acted" and acted["result"] == "succeeded"
        supp = by_decision[("decision_suppressed", None)]
        assert supp["outcome"] == "suppressed" and supp["reason"] == "approval_pending"

        only = await (await client.get("/api/incidents?outcome=suppressed")).json()
        assert [r["outcome"] for r in only["items"]] == ["suppressed"]
        assert (await client.get("/api/incidents?outcome=nonsense")).status == 400
        none = await (await client.get("/api/incidents?host=elsewhere")).json()
        assert none["items"] == []
        pb = await (await client.get("/api/incidents?playbook=high_queue_backlog")).json()
        assert [r["command_id"] for r in pb["items"]] == ["c1"]

        playbooks = (await (await client.get("/api/playbooks")).json())["items"]
        drift = next(p for p in playbooks if p["target"] == "config/db.yaml")
        assert drift["suppressed_by_reason"] == {"approval_pending": 1}
        snaps = {s["path"]: s for s in (await (await client.get("/api/snapshots")).json())["items"]}
        assert snaps["models/m.pkl"]["last_snapshot"] == "m_2.pkl"
        assert snaps["models/m.pkl"]["taken"] == 2 and snaps["models/m.pkl"]["pruned"] == 1


async def test_a_chain_holds_every_event_by_the_ids_they_carry(tmp_path: Path) -> None:
    async with console(tmp_path, None) as (client, _projector, _token):
        rows = (await (await client.get("/api/incidents")).json())["items"]
        waiting = next(r for r in rows if r["command_id"] == "c9")
        chain = await (await client.get(f"/api/incidents/{waiting['seq']}")).json()
        types = [e["type"] for e in chain["events"]]
        assert types == ["config_drift", "approval_requested"]
        assert chain["events"][0]["id"] == "finding-db"
        assert chain["events"][1]["seq"] == waiting["seq"]
        assert chain["events"][1]["data"]["cause_ids"] == ["finding-db"]
        acted = next(r for r in rows if r["command_id"] == "c1")
        chain = await (await client.get(f"/api/incidents/{acted['seq']}")).json()
        assert [e["type"] for e in chain["events"]] == ["command_issued", "command_succeeded"]
        assert (await client.get("/api/incidents/1")).status == 404  # a boot phase: no decision
        assert (await client.get("/api/incidents/x")).status == 400


async def test_openapi_names_every_api_route(tmp_path: Path) -> None:
    async with console(tmp_path, None) as (client, _projector, _token):
        doc = await (await client.get("/api/openapi.json")).json()
        assert doc == json.loads(json.dumps(openapi.document()))
        routes = {(r.method.lower(), r.resource.canonical) for r in client.app.router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/api/")}
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert routes - {("head", p) for _m, p in routes} == documented
        page = await client.get("/")
        assert page.status == 200 and "Grace console" in await page.text()
        assert (await client.get("/static/app.js")).status == 200
        assert (await client.get("/static/nope.js")).status == 404


async def test_actions_without_the_token_are_refused_with_a_reason(tmp_path: Path) -> None:
    async with console(tmp_path, None) as (client, _projector, token):
        r = await client.post("/api/approvals/c9/approve")
        assert r.status == 401
        assert "operator token" in (await r.json())["error"]
        r = await client.post("/api/holds", json={"target": "host:web-1", "for": "5m", "reason": "x"},
                              headers={"Authorization": "Bearer wrong"})
        assert r.status == 401 and "not the operator token" in (await r.json())["error"]
        auth = await (await client.get("/api/auth")).json()
        assert auth["authorized"] is False and auth["reason"]
        auth = await (await client.get("/api/auth", headers={"Authorization": f"Bearer {token}"})).json()
        assert auth["authorized"] is True


async def test_approve_from_the_api_records_the_clis_event_once(tmp_path: Path, nats_url: str) -> None:
    async with console(tmp_path, nats_url) as (client, _projector, token):
        auth = {"Authorization": f"Bearer {token}"}
        r = await client.post("/api/approvals/c9/approve", json={"by": "erin"}, headers=auth)
        body = await r.json()
        assert r.status == 200, body
        assert body["type"] == "approval_granted"
        assert body["id"] == operator_actions.decision_id("c9")
        nc = await nats.connect(nats_url)
        try:
            msg = await nc.jetstream().get_msg(topology.EVENTS, body["seq"])
        finally:
            await nc.close()
        ev = events.decode(msg.data)
        assert isinstance(ev.data, events.ApprovalGranted)
        assert (ev.data.command_id, ev.data.by, ev.data.via) == ("c9", "erin", "http")
        assert msg.subject.startswith("grace.events.operator.approval_granted.")
        # a second decision on c9 carries the same event id: the server keeps only the first
        again = await client.post("/api/approvals/c9/deny", json={"reason": "no"}, headers=auth)
        assert again.status == 409 and "same moment" in (await again.json())["error"]
        # what the log says is refused as the CLI refuses it
        r = await client.post("/api/approvals/c1/approve", headers=auth)
        assert r.status == 409 and "no approval is requested" in (await r.json())["error"]
        r = await client.post("/api/approvals/c9/deny", json={"reason": " "}, headers=auth)
        assert r.status == 409 and "reason" in (await r.json())["error"]
        r = await client.post("/api/holds", json={"target": "kernel:nope", "for": "5m",
                                                  "reason": "x"}, headers=auth)
        assert r.status == 409 and "no kernel named 'nope'" in (await r.json())["error"]
        r = await client.post("/api/holds", json={"target": "host:web-1", "for": "99h",
                                                  "reason": "x"}, headers=auth)
        assert r.status == 409 and "holds.max" in (await r.json())["error"]
        r = await client.post("/api/holds", data=b"[1", headers=auth)
        assert r.status == 400
        r = await client.post("/api/holds", json={"target": "host:web-1", "for": "10m",
                                                  "reason": "kernel upgrade"}, headers=auth)
        added = await r.json()
        assert r.status == 200 and added["type"] == "hold_added", added
        assert added["data"]["via"] == "http" and added["data"]["by"] == "console"
