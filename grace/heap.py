"""A long-running stage's heap after boot: collected once, then frozen.

What boot leaves alive (modules, playbooks, state rebuilt from the log) lives as
long as the process. `gc.freeze` moves it out of the collector's generations, so
the full collections a busy stage triggers no longer scan it again and again;
objects made later are collected as before.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what boot left as garbage, then freeze the rest (call once, after boot)."""
    gc.collect()
    gc.freeze()
