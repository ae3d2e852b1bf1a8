"""The transport contract on the fast implementation (`nats.fast_path: true`)."""

from tests.transport.contract import TransportContract


class TestFastTransport(TransportContract):
    fast = True
