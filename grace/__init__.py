"""Grace: an event-sourced self-healing pipeline on NATS JetStream."""

__version__ = "0.1.0"
