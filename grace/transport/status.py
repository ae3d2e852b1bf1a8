"""JetStream status messages on a pull request's inbox, and what each one means.

A status message has headers and no body: `NATS/1.0 404 No Messages`. Each one
is handled explicitly; one this module does not know is logged, never dropped
in silence.
"""

from __future__ import annotations

import enum
import logging

log = logging.getLogger(__name__)


class Action(enum.Enum):
    """What the consume loop does about a status message."""

    ALIVE = "alive"  # 100: idle heartbeat or flow control; the consumer lives
    ENDED = "ended"  # the pull request is over; ask again
    RECREATE = "recreate"  # the consumer is gone: re-create it from the stage's position


def status_of(headers: bytes) -> str:
    """The status code of a control message (`NATS/1.0 404 No Messages`), or ''."""
    if len(headers) > 9 and headers[8:9] == b" ":
        return headers[9:12].decode()
    return ""


def description_of(headers: bytes) -> str:
    """The text after the status code on the first header line (`No Messages`)."""
    first = headers.split(b"\r\n", 1)[0]
    return first[13:].decode(errors="replace").strip()


def classify(code: str, description: str, *, stage: str, consumer: str) -> Action:
    """Map a status to an action, logging what an operator should see."""
    if code == "100":
        return Action.ALIVE
    if code in ("404", "408"):  # no messages now / the request expired
        return Action.ENDED
    if code == "409":
        if "consumer deleted" in description.lower():
            log.warning("%s: consumer %s was deleted on the server (409 %s); re-creating it from "
                        "this stage's position", stage, consumer, description)
            return Action.RECREATE
        if "leadership change" in description.lower() or "server shutdown" in description.lower():
            log.info("%s: pull request on %s ended: 409 %s", stage, consumer, description)
        else:  # Exceeded MaxWaiting / MaxRequestBatch / MaxRequestExpires / MaxBytes ...
            log.warning("%s: pull request on %s refused: 409 %s", stage, consumer, description)
        return Action.ENDED
    if code == "503":
        log.warning("%s: no responders for consumer %s (503): the consumer or its stream is "
                    "missing; re-creating it from this stage's position", stage, consumer)
        return Action.RECREATE
    log.warning("%s: unexpected status %s %r on consumer %s; ending that pull request",
                stage, code, description, consumer)
    return Action.ENDED
