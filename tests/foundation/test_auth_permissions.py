"""The NATS permissions `grace auth init` writes, role by role, read back from server.conf."""

from __future__ import annotations

import json
import re
from pathlib import Path

from grace import auth

JS_READ = {"$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST",
           "$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>",
           "$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.DELETE.>",
           "$JS.API.STREAM.MSG.GET.>", "$JS.API.DIRECT.GET.>"}
COMMON = {"grace.heartbeat.>", "grace.rejected.>", "$JS.ACK.>", *JS_READ}
PIPELINE_SUBSCRIBE = {"_INBOX.>", "grace.heartbeat.>"}

# What each role may publish and subscribe to, written out by hand; deriving them from
# topology's publishers table must not widen or narrow any of them.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "producer": ({"grace.events.trigger.*.*", "grace.events.check.*.*", "grace.events.stage.*.*",
                  "grace.events.snapshot.snapshot_due.*", "$KV.grace_state.>", *COMMON,
                  "grace.events.boot.boot_phase.*"},  # boot phase 3
                 PIPELINE_SUBSCRIBE),
    "processor": ({"grace.events.decision.*.*", "grace.events.operator.hold_released.*",
                   "grace.commands.>", "$KV.grace_timer_lease.>", *COMMON}, PIPELINE_SUBSCRIBE),
    "actuator": ({"grace.events.result.*.*", "grace.events.kernel.*.*", "grace.events.snapshot.*.*",
                  "grace.events.task.*.*", "grace.events.stage.*.*", "grace.tasks.>",
                  "$KV.grace_intents.>", *COMMON,
                  "grace.events.boot.boot_phase.*"}, PIPELINE_SUBSCRIBE),  # boot phase 4
    "operator": ({"grace.events.operator.*.*", *COMMON}, PIPELINE_SUBSCRIBE),
    "projector": (set(COMMON), PIPELINE_SUBSCRIBE),
    "viewer": ({"$JS.API.INFO", "$JS.API.STREAM.INFO.>", "$JS.API.CONSUMER.CREATE.>",
                "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.API.CONSUMER.INFO.>"}, PIPELINE_SUBSCRIBE),
    "admin": ({">"}, {">"}),
    # kernels (the supervised services) send only their heartbeats
    "kernel": ({"grace.heartbeat.*.>"}, {"_INBOX.>"}),
}

USER_LINE = re.compile(r'\{user: "(?P<user>[^"]+)", password: "[^"]*", permissions: '
                       r"\{publish: \{allow: (?P<pub>\[.*?\])\}, subscribe: \{allow: (?P<sub>\[.*?\])\}\}\}")


def permissions_in(conf: str) -> dict[str, tuple[set[str], set[str]]]:
    """user -> (publish allow, subscribe allow), parsed from a generated server.conf."""
    found = {}
    for m in USER_LINE.finditer(conf):
        found[m["user"]] = (set(json.loads(m["pub"])), set(json.loads(m["sub"])))
    return found


def test_auth_init_writes_todays_permissions_for_every_role(tmp_path: Path) -> None:
    folder = auth.init(tmp_path)
    got = permissions_in((folder / "server.conf").read_text())
    for role, (pub, sub) in EXPECTED.items():
        assert role in got, f"server.conf has no user {role!r}"
        assert got[role][0] == pub, (f"{role} publish: added {sorted(got[role][0] - pub)}, "
                                     f"removed {sorted(pub - got[role][0])}")
        assert got[role][1] == sub, f"{role} subscribe: {sorted(got[role][1])} != {sorted(sub)}"


def test_every_role_in_server_conf_is_known_here(tmp_path: Path) -> None:
    # a new role (e.g. kernel) goes into EXPECTED with its permissions, never in unchecked
    folder = auth.init(tmp_path)
    got = permissions_in((folder / "server.conf").read_text())
    assert set(got) == set(auth.ROLES) == set(EXPECTED)
