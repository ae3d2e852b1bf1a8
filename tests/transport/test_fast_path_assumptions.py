"""The fast path's assumptions about nats-py internals, checked one by one.

grace.transport.fastclient overrides or calls private members of nats-py's
Client and Parser. nats-py is pinned to one minor release; when an upgrade
changes one of these, the test that fails names the member, and
`nats.fast_path: false` (or GRACE_FAST_PATH=0) runs Grace without any of them
until the fast path is adapted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from nats.aio import client as client_mod
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol import parser as parser_mod
from nats.protocol.parser import Parser

from grace.transport.fastclient import FastClient


def params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def fail(member: str, what: str) -> None:
    pytest.fail(f"nats-py changed {member}: {what}. The fast path (grace/transport/fastclient.py) "
                "relies on it; run with nats.fast_path: false (GRACE_FAST_PATH=0) until it is "
                "adapted.", pytrace=False)


CLIENT_METHODS = {
    "_process_msg": ["self", "sid", "subject", "reply", "data", "headers"],
    "_send_command": ["self", "cmd", "priority"],
    "_flush_pending": ["self", "force_flush"],
    "_process_err": ["self", "err_msg"],
    "_process_ping": ["self"],
    "_process_pong": ["self"],
    "_process_info": ["self", "info", "initial_connection"],
}


@pytest.mark.parametrize("member", sorted(CLIENT_METHODS))
def test_client_private_method_keeps_its_signature(member: str) -> None:
    fn = getattr(Client, member, None)
    if fn is None or not inspect.iscoroutinefunction(fn):
        fail(f"Client.{member}", "it is gone or no longer a coroutine function")
        return
    if params(fn) != CLIENT_METHODS[member]:
        fail(f"Client.{member}", f"its parameters are now {params(fn)}, "
             f"expected {CLIENT_METHODS[member]}")


@pytest.mark.parametrize("member", ["_ps", "_flush_queue", "_pending_data_size",
                                    "_max_pending_size", "stats"])
def test_client_private_attribute_exists_after_init(member: str) -> None:
    if not hasattr(Client(), member):
        fail(f"Client.{member}", "a new Client no longer has this attribute")


def test_the_client_parses_with_its_ps_parser() -> None:
    src = inspect.getsource(Client._read_loop)
    if "self._ps.parse(" not in src:
        fail("Client._read_loop", "it no longer feeds socket reads to self._ps.parse()")
    if "DEFAULT_BUFFER_SIZE" not in src or not hasattr(client_mod, "DEFAULT_BUFFER_SIZE"):
        fail("nats.aio.client.DEFAULT_BUFFER_SIZE", "reads no longer use this module constant "
             "(grace.transport.fastclient.read_in_chunks_of sets it)")


def test_the_publish_path_flushes_as_the_fast_publish_does() -> None:
    src = inspect.getsource(Client._send_publish)
    for needle in ("self._send_command(", "self._flush_queue", "self._flush_pending()"):
        if needle not in src:
            fail("Client._send_publish", f"it no longer uses {needle}")


def test_a_subscription_keeps_its_sid_in_id() -> None:
    if "_id" not in inspect.getsource(Subscription.__init__):
        fail("Subscription._id", "subscriptions no longer keep their sid there")


@pytest.mark.parametrize("member", ["buf", "state", "needed", "header_needed", "msg_arg", "nc"])
def test_parser_state_attribute_exists(member: str) -> None:
    if not hasattr(Parser(None), member):
        fail(f"Parser.{member}", "the parser no longer keeps this state")


def test_parser_reset_replaces_its_buffer() -> None:
    p = Parser(None)
    before = p.buf
    p.reset()
    if p.buf is before:
        fail("Parser.reset", "it no longer replaces self.buf (the fast parser detects a "
             "reconnect mid-parse by that)")


@pytest.mark.parametrize("name", ["AWAITING_CONTROL_LINE", "AWAITING_MSG_PAYLOAD", "CRLF_SIZE",
                                  "ERR_RE", "INFO_RE", "MAX_CONTROL_LINE_SIZE", "OK_RE", "PING_RE",
                                  "PONG_RE"])
def test_parser_module_constant_exists(name: str) -> None:
    if not hasattr(parser_mod, name):
        fail(f"nats.protocol.parser.{name}", "the constant is gone")


def test_the_fast_client_installs_its_parser() -> None:
    nc = FastClient()
    if type(nc._ps).__name__ != "FastParser":
        fail("Client._ps", "FastClient's parser was replaced after its __init__")
