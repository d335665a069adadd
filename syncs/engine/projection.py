"""The API calls a run of the staged plan would make, asked of the destination's kind
(KindSpec.project_calls): what a dry run, or a run held by the mass-removal guard, reports
before anything is sent."""

from __future__ import annotations

from destinations.kinds import kind_spec
from destinations.kindspec import CallProjection, PlannedSend
from destinations.registry import destination_config
from syncs.engine import staging
from syncs.engine.planning import Plan
from syncs.models import RunStatus, Sync, SyncRun
from syncs.selectors import PROJECTION_KEY

__all__ = ["PROJECTION_KEY", "plan_calls_project"]


def plan_calls_project(*, sync: Sync, plan: Plan, run_id: int) -> CallProjection:
    """The calls sending `plan` (staged in this connection's changes table) would take."""
    destination = sync.destination
    config = destination_config(destination)
    send = PlannedSend(
        adds=plan.adds,
        removes=plan.removes,
        options=config.options,
        settings=config.settings,
        sync_options=dict(sync.options or {}),
        target_field=sync.target_field,
        target_confirmed=_target_confirmed(sync, run_id),
        identity_lengths=staging.staging_identity_lengths,
        leavers_without_remote_id=lambda: staging.staging_leavers_without_remote_id(sync_id=sync.pk, adds=plan.adds),
    )
    return kind_spec(destination.kind).project_calls(send)


def _target_confirmed(sync: Sync, run_id: int) -> bool:
    """A run of the sync started since it (or its destination) was last changed validated its
    target (and created it where a run may)."""
    changed = max(sync.updated_at, sync.destination.updated_at)
    return (
        SyncRun.objects.filter(
            sync_id=sync.pk, is_dry_run=False, status__in=(RunStatus.SUCCEEDED, RunStatus.PARTIAL),
            started_at__gte=changed,
        )
        .exclude(pk=run_id)
        .exists()
    )
