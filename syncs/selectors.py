"""Read-side queries over syncs, runs and synced state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import CharField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django_q.models import Schedule

from syncs.models import (
    ACTIVE_RUN_STATUSES,
    FROZEN_SYNC_FIELDS,
    RunStatus,
    Sync,
    SyncedMember,
    SyncFailure,
    SyncRun,
)
from syncs.schedules import SYNC_SCHEDULE_PREFIX, sync_schedule_name

RETRIABLE_OPERATIONS = (SyncFailure.Operation.ADD, SyncFailure.Operation.REMOVE)


def sync_is_frozen(sync: Sync) -> bool:
    """True once the destination has acknowledged users of this sync."""
    if sync.pk is None:
        return False
    return SyncedMember.objects.filter(sync_id=sync.pk).exists()


def sync_frozen_changes(sync: Sync) -> list[str]:
    """Frozen fields that `sync` (unsaved edits) changes compared to the stored row."""
    if sync.pk is None:
        return []
    stored = Sync.objects.filter(pk=sync.pk).values("destination_id", "target_field", "identity_property").first()
    if stored is None:
        return []
    changed = [
        name
        for name in FROZEN_SYNC_FIELDS
        if stored[Sync._meta.get_field(name).attname] != getattr(sync, Sync._meta.get_field(name).attname)
    ]
    if changed and sync_is_frozen(sync):
        return changed
    return []


def sync_last_run(sync: Sync) -> SyncRun | None:
    """The latest run that did something: skipped runs (a tick while another run was
    active) never hide the run that stopped them."""
    return (
        SyncRun.objects.filter(sync_id=sync.pk)
        .exclude(status=RunStatus.SKIPPED)
        .order_by("-created_at", "-id")
        .first()
    )


def run_outcome_counts(run: SyncRun) -> dict[str, int]:
    """Users acknowledged as members (added) and non-members (removed), failed and skipped:
    the counts `run_sync --json` prints and alerts carry."""
    return {
        "added": run.succeeded_adds,
        "removed": run.succeeded_removes,
        "failed": run.failed_adds + run.failed_removes,
        "skipped": run.skipped_users,
    }


def sync_active_run(sync: Sync) -> SyncRun | None:
    """The queued or running run, else the run awaiting approval, if any."""
    runs = SyncRun.objects.filter(sync_id=sync.pk)
    return (
        runs.filter(status__in=ACTIVE_RUN_STATUSES).order_by("-id").first()
        or runs.filter(status=RunStatus.AWAITING_APPROVAL).order_by("-id").first()
    )


def sync_next_run_at(sync: Sync) -> dt.datetime | None:
    if sync.pk is None:
        return None
    return (
        Schedule.objects.filter(name=sync_schedule_name(sync.pk))
        .order_by("pk")
        .values_list("next_run", flat=True)
        .first()
    )


def sync_schedules_next_run() -> Subquery:
    """Annotation for Sync querysets: the next_run of each sync's schedule (None if none)."""
    name = Concat(Value(SYNC_SCHEDULE_PREFIX), Cast(OuterRef("pk"), CharField()), output_field=CharField())
    return Subquery(
        Schedule.objects.filter(name=name).order_by("pk").values("next_run")[:1]
    )


def sync_acknowledged_member_count(sync: Sync) -> int:
    return SyncedMember.objects.filter(sync_id=sync.pk, is_member=True).count()


def run_failed_user_count(run: SyncRun) -> int:
    """Users of the run that a retry would re-send (skipped users have nothing to send)."""
    return SyncFailure.objects.filter(run_id=run.pk, operation__in=RETRIABLE_OPERATIONS).count()


def runs_for_sync(sync: Sync) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(sync_id=sync.pk).order_by("-created_at", "-id")


def synced_remote_ids(*, sync_id: int, identities: Iterable[str]) -> dict[str, str]:
    """identity -> the destination's own id the synced state keeps for it, where it has one
    (connectors with `uses_remote_ids` report them)."""
    wanted = list(identities)
    if not wanted:
        return {}
    return dict(
        SyncedMember.objects.filter(sync_id=sync_id, identity_value__in=wanted)
        .exclude(remote_id="")
        .values_list("identity_value", "remote_id")
    )
