"""The transport contract on nats-py's public JetStream API (`nats.fast_path: false`)."""

from tests.transport.contract import TransportContract


class TestPublicTransport(TransportContract):
    fast = False
