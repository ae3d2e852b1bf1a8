"""The web console at `/`: a page, its JSON API under `/api/`, live updates, operator actions."""

from projections.console.api import mount

__all__ = ["mount"]
