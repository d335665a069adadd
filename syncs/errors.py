"""Errors raised by the sync services, with messages a growth engineer can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncs.models import SyncRun


class SyncRunConflict(Exception):
    """A queued or running run (or one awaiting approval) already exists for the sync."""

    def __init__(self, message: str, *, active_run: SyncRun | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.active_run = active_run


class SyncRunStateError(ValueError):
    """The run is not in a state that allows the operation (e.g. cancelling a finished run)."""
