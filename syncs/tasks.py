"""django-q2 tasks: take ids, call services, return a small dict, safe to run twice."""

from __future__ import annotations

from typing import Any

from syncs.models import SyncRun
from syncs.services import (
    runs_reap_stale,
    sync_run_execute,
    sync_run_scheduled_fire,
    sync_runs_prune,
    synced_state_orphans_delete,
)


def execute_sync_run(run_id: int) -> dict[str, Any]:
    """Claim and carry out a queued run; a re-delivered task finds it claimed and does nothing."""
    try:
        run = sync_run_execute(run_id=run_id)
    except SyncRun.DoesNotExist:
        # The sync (and its runs) was deleted while the task waited in the queue.
        return {"run_id": run_id, "status": "missing"}
    return {"run_id": run.pk, "status": run.status}


def run_scheduled_sync(sync_id: int) -> dict[str, Any]:
    """A dynamic sync's schedule fired: run it now, or record a skipped run if one is active."""
    run = sync_run_scheduled_fire(sync_id=sync_id)
    if run is None:
        return {"sync_id": sync_id, "status": "not_scheduled"}
    return {"sync_id": sync_id, "run_id": run.pk, "status": run.status}


def prune_runs() -> dict[str, Any]:
    from sources.services import import_runs_prune

    return {"deleted_runs": sync_runs_prune(), "deleted_orphan_state": synced_state_orphans_delete(),
            "deleted_import_runs": import_runs_prune()}


def reap_stale_runs() -> dict[str, Any]:
    return {"reaped_runs": runs_reap_stale()}
