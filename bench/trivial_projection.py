"""The benchmark's trivial user projection: events per type, from the subjects alone.

What any projection pays at least: the frames, the type filter, a batch, one
transaction with its position. Nothing is decoded.
"""

from __future__ import annotations

from collections import Counter

from grace import events
from projections.user.api import Batch, Projection


def apply(batch: Batch) -> dict[str, list[tuple[str, int]]]:
    """One (type, count) row per type in the batch."""
    return {"type_counts": list(Counter(batch.types).items())}


PROJECTION = Projection(
    name="type_counts",
    version=1,
    handles=tuple(sorted(events.PAYLOAD_CLASSES)),
    tables=["CREATE TABLE type_counts (type VARCHAR, n BIGINT)",
            "CREATE VIEW events_per_type AS SELECT type, sum(n) AS n FROM type_counts GROUP BY type"],
    apply=apply,
)
