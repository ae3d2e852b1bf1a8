"""NATS transport: one contract (`base.Transport`), a fast and a public-API implementation.

`nats.fast_path` in the config (default true) picks the fast one; false, or
the environment variable GRACE_FAST_PATH=0, picks nats-py's public API for
every stage and command of the process.
"""

from __future__ import annotations

import os

from nats.aio.client import Client

from grace.transport.base import (
    Feed,
    PayloadTooLarge,
    PubAck,
    PubItem,
    Raw,
    RawHandler,
    RawMsg,
    Transport,
)

__all__ = ["Feed", "PayloadTooLarge", "PubAck", "PubItem", "Raw", "RawHandler", "RawMsg",
           "Transport", "fast_path_enabled", "new_client", "wrap"]


def fast_path_enabled(configured: bool = True) -> bool:
    """The config's `nats.fast_path`, unless GRACE_FAST_PATH=0 (or false/no/off) turns it off."""
    env = os.environ.get("GRACE_FAST_PATH", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    return configured


def new_client(fast: bool) -> Client:
    """An unconnected nats-py client of the implementation `fast` names."""
    if fast:
        from grace.transport.fastclient import FastClient

        return FastClient()
    from grace.transport.public import PublicClient

    return PublicClient()


def wrap(nc: Client) -> Transport:
    """The transport for a client `new_client` made (and connected)."""
    from grace.transport.fastclient import FastClient

    if isinstance(nc, FastClient):
        from grace.transport.fast import FastTransport

        return FastTransport(nc)
    from grace.transport.public import PublicClient, PublicTransport

    assert isinstance(nc, PublicClient)
    return PublicTransport(nc)
