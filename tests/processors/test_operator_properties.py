"""Property tests: random interleavings of findings, holds, releases, approvals, denials and
expiries in virtual time. Whatever the order, no command goes to a held target, an
`approve` playbook acts only on a timely yes, and each yes issues its command exactly once.
The oracle reads only the input: it knows nothing of the matcher's state."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from grace import events
from tests.processors.support import at, ev, matcher

PLAYBOOKS = """
playbooks:
  - name: act_restart
    on: kernel_heartbeat_gap
    group_by: [kernel]
    do: [{restart_kernel: {kernel: "{kernel}"}}]
    cooldown: 30s
  - name: ask_scale
    on: queue_backlog
    group_by: [kernel]
    do: [{scale_workers: {kernel: "{kernel}", by: 1}}]
    cooldown: 30s
    mode: approve
    approve_within: 5m
"""
KERNELS = ("api", "worker")
TARGETS = ("kernel:api", "kernel:worker", "playbook:act_restart", "playbook:ask_scale",
           "host:web-1")

step = st.one_of(
    st.tuples(st.just("gap"), st.sampled_from(KERNELS)),
    st.tuples(st.just("backlog"), st.sampled_from(KERNELS)),
    st.tuples(st.just("hold"), st.sampled_from(TARGETS), st.integers(1, 900)),
    st.tuples(st.just("release"), st.integers(0, 10)),
    st.tuples(st.just("grant"), st.integers(0, 10)),
    st.tuples(st.just("deny"), st.integers(0, 10)),
    st.tuples(st.just("wait"), st.integers(1, 400)),
)


@dataclass
class HoldSpan:
    target: str
    start: float
    until: float
    released: float | None = None

    def active(self, t: float) -> bool:
        return self.start <= t < self.until and (self.released is None or t < self.released)

    def covers(self, playbook: str, kernel: str) -> bool:
        kind, _, name = self.target.partition(":")
        return {"kernel": name == kernel, "playbook": name == playbook, "host": True}[kind]


@dataclass
class World:
    """What the input said, and what the matcher emitted, in order."""

    holds: list[HoldSpan] = field(default_factory=list)
    hold_ids: list[str] = field(default_factory=list)
    requests: dict[str, events.Event] = field(default_factory=dict)
    answers: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # cid -> [(kind, t)]
    emitted: list[events.Event] = field(default_factory=list)

    def held(self, t: float, playbook: str, kernel: str) -> bool:
        return any(h.active(t) and h.covers(playbook, kernel) for h in self.holds)


def drive(steps: list[tuple]) -> World:
    m = matcher(PLAYBOOKS)
    w = World()
    t = 0.0

    def feed(e: events.Event) -> None:
        m.tick(e.time.timestamp())
        m.process(e)
        w.emitted.extend(m.take())
        for out in w.emitted:
            if out.type == "approval_requested":
                w.requests.setdefault(out.data.command_id, out)

    for s in steps:
        t += 1
        kind = s[0]
        if kind == "gap":
            feed(ev(events.KernelHeartbeatGap(kernel=s[1], timeout_s=6.0), t))
        elif kind == "backlog":
            feed(ev(events.QueueBacklog(kernel=s[1], stream="JOBS", consumer="w", pending=500,
                                        ack_pending=0, backlog=500, threshold=200), t))
        elif kind == "hold":
            hid = f"h{len(w.hold_ids)}"
            w.hold_ids.append(hid)
            w.holds.append(HoldSpan(s[1], t, t + s[2]))
            feed(ev(events.HoldAdded(hold_id=hid, target=s[1], until=at(t + s[2]), for_s=s[2],
                                     reason="r", by="op"), t))
        elif kind == "release" and w.hold_ids:
            i = s[1] % len(w.hold_ids)
            span = w.holds[i]
            if span.released is None:
                span.released = t
            feed(ev(events.HoldReleased(hold_id=w.hold_ids[i], target=span.target, by="op"), t))
        elif kind in ("grant", "deny") and w.requests:
            cid = sorted(w.requests)[s[1] % len(w.requests)]
            w.answers.setdefault(cid, []).append((kind, t))
            data: events.Payload = (events.ApprovalGranted(command_id=cid, by="op") if kind == "grant"
                                    else events.ApprovalDenied(command_id=cid, reason="no", by="op"))
            feed(ev(data, t))
        elif kind == "wait":
            t += s[1]
            m.tick(at(t).timestamp())
            w.emitted.extend(m.take())
    return w


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=60))
def test_no_command_for_a_held_target_or_without_a_timely_yes_and_each_yes_once(
        steps: list[tuple]) -> None:
    w = drive(steps)
    sent = [e for e in w.emitted if e.category == "command"]
    ids = [e.id for e in sent]
    assert len(ids) == len(set(ids)), "a command was issued twice"
    for e in sent:
        t = e.time.timestamp() - at(0).timestamp()
        assert not w.held(t, e.data.playbook, e.data.kernel), f"command for a held target: {e}"
        if e.data.playbook == "ask_scale":
            req = w.requests.get(e.id)
            assert req is not None, "an approve playbook acted without a request"
            answers = w.answers.get(e.id, [])
            first = answers[0] if answers else None
            assert first == ("grant", t), f"acted without a first, timely yes: {answers} at {t}"
            assert req.data.expires_at.timestamp() - at(0).timestamp() >= t, "acted after expiry"
    for e in w.emitted:
        if e.type == "approval_requested":
            t = e.time.timestamp() - at(0).timestamp()
            assert not w.held(t, e.data.playbook, e.data.params["kernel"]), "asked for a held target"
    # liveness: a first answer that is a timely yes on an unheld target issues the command
    for cid, answers in w.answers.items():
        kind, t = answers[0]
        req = w.requests[cid]
        expires = req.data.expires_at.timestamp() - at(0).timestamp()
        if kind == "grant" and t <= expires and not w.held(t, "ask_scale", req.data.params["kernel"]):
            assert ids.count(cid) == 1, f"a timely yes for {cid} at {t} issued {ids.count(cid)} commands"
