"""Who publishes what is declared once (topology.EVENT_PUBLISHERS); NATS roles derive from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import control.common
import producers.stage
from grace import auth, events, topology
from grace.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = {cls.CATEGORY for cls in events.PAYLOAD_CLASSES.values()}


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` the rest (one token or more)."""
    p, s = pattern.split("."), subject.split(".")
    for i, part in enumerate(p):
        if part == ">":
            return len(s) > i
        if i >= len(s) or (part != "*" and part != s[i]):
            return False
    return len(p) == len(s)


def subject_of(cls: type[events.Payload]) -> str:
    """Where an event of `cls` about host h goes, as grace.bus.Bus.subject_of routes it."""
    if issubclass(cls, events.Command):
        return topology.command_subject("h", cls.TYPE)
    if cls is events.FixTask:
        return topology.task_subject("h", "k")
    return topology.event_subject(cls.CATEGORY, cls.TYPE, "h")


def test_every_event_category_has_exactly_one_publishing_role() -> None:
    assert set(topology.EVENT_PUBLISHERS) == CATEGORIES, (
        f"categories without a publisher: {sorted(CATEGORIES - set(topology.EVENT_PUBLISHERS))}; "
        f"publishers of no category: {sorted(set(topology.EVENT_PUBLISHERS) - CATEGORIES)}")
    for category, role in topology.EVENT_PUBLISHERS.items():
        assert role in auth.ROLES, (category, role)


def test_the_publishing_role_may_publish_every_type_of_its_category() -> None:
    for cls in events.PAYLOAD_CLASSES.values():
        role = topology.EVENT_PUBLISHERS[cls.CATEGORY]
        subject = subject_of(cls)
        assert any(matches(p, subject) for p in auth.ROLES[role]), (cls.TYPE, role, subject)


def test_only_the_owner_and_the_named_extras_may_publish_an_event_type() -> None:
    for cls in events.PAYLOAD_CLASSES.values():
        subject = subject_of(cls)
        owner = topology.EVENT_PUBLISHERS[cls.CATEGORY]
        for role in topology.PIPELINE_ROLES:
            if role == owner:
                continue
            allowed = [p for p in auth.ROLES[role] if matches(p, subject)]
            assert set(allowed) <= set(topology.ROLE_EXTRA_SUBJECTS[role]), (
                f"{role} may publish {cls.TYPE} ({subject}) through {allowed}, which neither "
                "EVENT_PUBLISHERS nor ROLE_EXTRA_SUBJECTS grants")


def test_every_extra_event_subject_names_a_real_category_and_type() -> None:
    for role, extras in topology.ROLE_EXTRA_SUBJECTS.items():
        for subject in extras:
            if not subject.startswith("grace.events."):
                continue
            _, _, category, type_, _host = subject.split(".")
            assert category in CATEGORIES, (role, subject)
            assert topology.EVENT_PUBLISHERS[category] != role, (role, subject, "owns it already")
            if type_ != "*":
                assert category == events.PAYLOAD_CLASSES[type_].CATEGORY, (role, subject)


def test_each_pipeline_roles_allow_list_is_what_the_table_says() -> None:
    owned = {
        "producer": {"grace.events.trigger.*.*", "grace.events.check.*.*"},
        "processor": {"grace.events.decision.*.*", "grace.commands.>"},
        "actuator": {"grace.events.result.*.*", "grace.events.kernel.*.*",
                     "grace.events.snapshot.*.*", "grace.events.task.*.*", "grace.tasks.>"},
        "operator": {"grace.events.operator.*.*"},
        "projector": set(),
    }
    assert set(topology.PIPELINE_ROLES) == set(owned)
    for role, subjects in owned.items():
        want = subjects | set(topology.ROLE_EXTRA_SUBJECTS[role]) | set(auth.COMMON)
        assert set(auth.ROLES[role]) == want, role
        assert len(auth.ROLES[role]) == len(want), f"{role}: a subject is listed twice"
    assert auth.ROLES["admin"] == [">"]


def test_an_unknown_component_is_an_error_never_admin() -> None:
    with pytest.raises(ConfigError) as err:
        auth.role_of("producr")
    message = str(err.value)
    assert "'producr'" in message and "COMPONENT_ROLE" in message and "produce" in message


def test_an_unknown_component_gets_no_credentials(tmp_path: Path) -> None:
    auth.init(tmp_path)
    with pytest.raises(ConfigError, match="'nobody'"):
        auth.credentials(tmp_path, "nobody")
    assert auth.credentials(tmp_path, "up")[0] == "admin"
    assert auth.credentials(tmp_path, "produce")[0] == "producer"


def test_every_component_maps_to_a_role_and_every_name_the_code_connects_with_is_known() -> None:
    assert set(auth.COMPONENT_ROLE.values()) <= set(auth.ROLES)
    used = set()
    for package in ("grace", "producers", "processors", "actuators", "projections", "control"):
        for path in (REPO / package).rglob("*.py"):
            used |= set(re.findall(r"\.bus\(\"([\w-]+)\"\)", path.read_text()))
    used |= {control.common.COMPONENT, producers.stage.STAGE}  # the names held in constants
    assert len(used) >= 10
    unknown = sorted(used - set(auth.COMPONENT_ROLE))
    assert not unknown, f"components connecting without a role: {unknown}"
