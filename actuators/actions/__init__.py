"""The actions, one module each, registered by import in a plain dict."""

from __future__ import annotations

from actuators.actions import (
    clear_caches,
    escalate,
    load,
    notify,
    restart_kernel,
    restore,
    review_code,
    scale_workers,
    take_snapshot,
    upgrade_pr,
)
from actuators.actions.base import Action, ActionContext

ACTIONS: dict[str, Action] = {
    "scale_workers": scale_workers.ACTION,
    "shed_load": load.SHED,
    "resume_load": load.RESUME,
    "clear_caches": clear_caches.ACTION,
    "restore_model_weights": restore.MODEL,
    "restore_from_snapshot": restore.ANY,
    "restart_kernel": restart_kernel.ACTION,
    "escalate_to_coding_agent": escalate.ACTION,
    "review_code": review_code.ACTION,
    "create_upgrade_pr": upgrade_pr.ACTION,
    "take_snapshot": take_snapshot.ACTION,
    "notify": notify.ACTION,
}

__all__ = ["ACTIONS", "Action", "ActionContext"]
