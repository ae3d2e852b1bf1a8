"""The OpenAPI 3 document of the console's API, served at `/api/openapi.json`."""

from __future__ import annotations

from typing import Any

from projections.console.queries import OUTCOMES


def _s(type_: str, nullable: bool = False, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, **kw}
    if nullable:
        out["nullable"] = True
    return out


def _obj(props: dict[str, dict[str, Any]], required: list[str] | None = None,
         extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required,
            "additionalProperties": extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


STR, NSTR, INT, NINT, NUM, NNUM = (_s("string"), _s("string", True), _s("integer"),
                                   _s("integer", True), _s("number"), _s("number", True))
TIME = _s("string", True, format="date-time")

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({"error": STR}),
    "Dashboard": _obj({"timestamp": STR, "system_state": STR, "health": STR, "as_of": NSTR,
                       "stale": _s("boolean"), "stale_after_s": NNUM,
                       "kernels": _s("object"), "holds": _s("object"),
                       "approvals": _s("object"), "fix_tasks": _s("object")},
                      extra=True),
    "Kernel": _obj({"host": STR, "kernel": STR, "instance": INT, "state": STR, "pid": NINT,
                    "critical": _s("boolean", True), "exit_code": NINT, "restarts": NINT,
                    "last_type": NSTR, "updated_at": TIME, "rss_mb": NNUM, "rss_at": TIME}),
    "Stage": _obj({"source": STR, "host": STR, "component": STR, "last_event": TIME,
                   "age_s": NNUM, "events": INT, "last_trouble": NSTR, "last_trouble_at": TIME}),
    "Task": _obj({"task_id": STR, "command_id": NSTR, "action": NSTR, "target": NSTR,
                  "playbook": NSTR, "time": TIME, "host": NSTR}),
    "Overview": _obj({"dashboard": _ref("Dashboard"), "last_seq": INT,
                      "kernels": {"type": "array", "items": _ref("Kernel")},
                      "stages": {"type": "array", "items": _ref("Stage")},
                      "open_tasks": {"type": "array", "items": _ref("Task")}}),
    "Incident": _obj({
        "seq": INT, "time": TIME, "host": NSTR, "decision": STR, "playbook": NSTR, "target": NSTR,
        "command_id": NSTR, "action": NSTR, "reason": NSTR, "finding": NSTR, "finding_seq": NINT,
        "outcome": _s("string", enum=list(OUTCOMES)), "decided_by": NSTR, "result": NSTR,
        "duration_ms": NNUM, "result_reason": NSTR, "verification": NSTR}),
    "Incidents": _obj({"last_seq": INT, "items": {"type": "array", "items": _ref("Incident")}}),
    "ChainEvent": _obj({"seq": INT, "time": TIME, "type": STR, "category": NSTR, "host": NSTR,
                        "source": NSTR, "id": NSTR, "data": _s("object", True)}),
    "Chain": _obj({"seq": INT, "events": {"type": "array", "items": _ref("ChainEvent")}}),
    "Playbook": _obj({"playbook": STR, "target": NSTR, "fired": INT, "observed": INT,
                      "suppressed": INT, "verify_failed": INT, "verify_passed": INT,
                      "last_fired": TIME, "last_suppressed": NSTR,
                      "suppressed_by_reason": {"type": "object",
                                               "additionalProperties": INT},
                      "budget_max": NINT, "budget_per_s": NNUM, "cooldown_s": NNUM,
                      "budget_left": NINT, "cooldown_until": TIME}),
    "Playbooks": _obj({"items": {"type": "array", "items": _ref("Playbook")}}),
    "Snapshot": _obj({"host": NSTR, "path": STR, "kind": NSTR, "last_good": TIME,
                      "last_snapshot": NSTR, "sha256": NSTR, "taken": INT, "pruned": INT,
                      "refused": INT, "restores": INT, "last_restore": TIME, "age_s": NNUM}),
    "Snapshots": _obj({"items": {"type": "array", "items": _ref("Snapshot")}}),
    "Auth": _obj({"authorized": _s("boolean"), "reason": STR, "token_file": STR}),
    "Recorded": _obj({"type": STR, "id": STR, "host": STR, "seq": INT, "data": _s("object")}),
    "Decision": _obj({"by": STR, "reason": STR}, required=[]),
    "NewHold": _obj({"target": STR, "for": STR, "reason": STR, "by": STR},
                    required=["target", "for", "reason"]),
    "By": _obj({"by": STR}, required=[]),
    "Document": {"type": "object"},
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema)}}}


def _get(summary: str, schema: str, params: list[dict[str, Any]] | None = None,
         errors: tuple[int, ...] = ()) -> dict[str, Any]:
    responses = {"200": _json(schema, summary)}
    for code in errors:
        responses[str(code)] = _json("Error", "the reason")
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def _post(summary: str, body: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    responses = {"200": _json("Recorded", "the event recorded in the log")}
    for code, why in ((400, "bad body"), (401, "no or wrong operator token"),
                      (409, "refused: the log says why"), (413, "body too large"),
                      (503, "NATS unreachable")):
        responses[str(code)] = _json("Error", why)
    return {"post": {"summary": summary, "parameters": params, "responses": responses,
                     "security": [{"operatorToken": []}],
                     "requestBody": {"required": False, "content": {
                         "application/json": {"schema": _ref(body)}}}}}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _p(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def document() -> dict[str, Any]:
    cid = [_p("command_id", STR)]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Grace console API", "version": "1",
                 "description": "Everything the console shows, read from the projection of the "
                                "log; actions need the operator token."},
        "paths": {
            "/api/overview": _get("Dashboard, kernels, stages, open fix tasks", "Overview"),
            "/api/incidents": _get("Incident chains, newest first", "Incidents", [
                _q("host", STR, "only this host"), _q("playbook", STR, "only this playbook"),
                _q("outcome", _s("string", enum=list(OUTCOMES)), "only this outcome"),
                _q("before", _s("integer", minimum=0), "only decisions before this log sequence"),
                _q("limit", _s("integer", minimum=1, maximum=500), "at most this many (100)")],
                errors=(400,)),
            "/api/incidents/{seq}": _get("Every event of one chain, with its log sequence",
                                         "Chain", [_p("seq", _s("integer"))], errors=(400, 404)),
            "/api/playbooks": _get("Per playbook and target: fired, suppressed, verified, "
                                   "budget left, cooldown until",
                                   "Playbooks"),
            "/api/snapshots": _get("Per protected file: last good snapshot, restores",
                                   "Snapshots"),
            "/api/auth": _get("Whether the request's token may act", "Auth"),
            "/api/openapi.json": _get("This document", "Document"),
            "/api/stream": {"get": {"summary": "Server-sent events: `applied` with the last "
                                               "sequence after each projected batch",
                                    "responses": {"200": {"description": "an event stream",
                                                          "content": {"text/event-stream": {
                                                              "schema": STR}}}}}},
            "/api/approvals/{command_id}/approve": _post("Approve a pending command", "By", cid),
            "/api/approvals/{command_id}/deny": _post("Deny a pending command (reason)",
                                                      "Decision", cid),
            "/api/holds": _post("Add a hold", "NewHold", []),
            "/api/holds/{hold_id}/release": _post("Release an active hold", "By",
                                                  [_p("hold_id", STR)]),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"operatorToken": {"type": "http", "scheme": "bearer"}},
        },
    }
