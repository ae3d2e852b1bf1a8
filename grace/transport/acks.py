"""JetStream ack subjects: the one place that reads them.

A delivery's reply subject is its ack subject and carries the stream sequence,
the delivery count, the consumer and the messages still pending, in one of two
forms (with or without domain and account hash).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class AckInfo(NamedTuple):
    """What a JetStream ack subject says about its delivery."""

    stream: bytes
    consumer: bytes
    delivered: int  # 1 on first delivery
    seq: int  # stream sequence
    pending: int  # messages left for this consumer after this one


def parse_ack(reply: bytes) -> AckInfo:
    """Every field of a JetStream ack subject, old (9 tokens) or new (11-12 tokens) form."""
    t = reply.split(b".")
    if len(t) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return AckInfo(t[2], t[3], int(t[4]), int(t[5]), int(t[8]))
    # $JS.ACK.<domain>.<acchash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<rnd>]
    return AckInfo(t[4], t[5], int(t[6]), int(t[7]), int(t[10]))


def parse_ack_subject(reply: bytes) -> tuple[int, int, int]:
    """(stream sequence, delivery count, pending) from a JetStream ack subject."""
    a = parse_ack(reply)
    return a.seq, a.delivered, a.pending


def stream_seq(reply: bytes) -> int:
    """The stream sequence alone from a JetStream ack subject."""
    t = reply.split(b".")
    return int(t[5] if len(t) == 9 else t[7])


def stream_time_ns(reply: bytes) -> int:
    """When the server stored the message (Unix ns), from a JetStream ack subject."""
    t = reply.split(b".")
    return int(t[7] if len(t) == 9 else t[9])


def seqs_delivered(replies: Iterable[bytes]) -> list[tuple[int, int]]:
    """(stream sequence, delivery count) of each ack subject: the consume loop's per-batch call."""
    out: list[tuple[int, int]] = []
    for reply in replies:
        t = reply.split(b".")
        out.append((int(t[5]), int(t[4])) if len(t) == 9 else (int(t[7]), int(t[6])))
    return out
