"""Scale-out: N processors share the log, each owning the hosts that hash to it.

Every playbook target starts with the event's host, so a host's events all go
to one partition and no window, cooldown or budget is ever split between two.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from grace import topology
from grace.errors import ConfigError


@dataclass(frozen=True)
class Partition:
    """Partition `index` of `count` (0-based)."""

    index: int
    count: int

    @property
    def consumer(self) -> str:
        return topology.processor_partition_consumer(self.index, self.count)

    def owns(self, host: str) -> bool:
        return owner(host, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def owner(host: str, count: int) -> int:
    """The partition of `host`: a hash stable across processes and Python versions."""
    return zlib.crc32(host.encode()) % count


def parse(text: str | None) -> Partition | None:
    """`I/N` (0 <= I < N) -> Partition; empty or None -> None (one processor owns all)."""
    if not text:
        return None
    try:
        i_text, n_text = text.split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        index, count = -1, 0
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--partition / GRACE_PARTITION {text!r} is not I/N with 0 <= I < N "
                          "(e.g. 0/2 and 1/2 for two processors); fix the option or unset the variable")
    return None if count == 1 else Partition(index, count)
