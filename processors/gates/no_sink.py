"""No sink: a `notify` whose sink config does not name is recorded as suppressed, not sent.

Shipped playbooks notify the sink `default` (the sink named so, else the first of config
`notify`); with no sink configured they match and record `no_sink` once per target, so the
log says why nobody was told. A sink name config does not know is refused at load time
(processors.validate), so here only `default` can be missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from processors.gates import Gate, Proposal, Refusal, Settings

if TYPE_CHECKING:
    from processors.targets import TargetState

NOTIFY = "notify"
DEFAULT_SINK = "default"


class NoSink(Gate):
    NAME = "no_sink"
    AT_APPROVAL = True

    def __init__(self, settings: Settings) -> None:
        self.sinks = frozenset(settings.sinks)

    def check(self, prop: Proposal, st: TargetState) -> Refusal | None:
        if not prop.playbook.notifies:
            return None
        for pl in prop.planned:
            if pl.action.action != NOTIFY:
                continue
            sink = str(pl.params.get("sink") or DEFAULT_SINK)
            if sink in self.sinks or (sink == DEFAULT_SINK and self.sinks):
                continue
            known = ", ".join(sorted(self.sinks)) or "none"
            return Refusal("no_sink", f"notify sink {sink!r} is not configured (sinks: {known}); "
                                      "add it to `notify:` in grace.yaml to be told",
                           key=f"no_sink:{sink}")
        return None
