"""Write-side services for syncs and runs. Admin, commands and tasks call these only."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Max, Q
from django.utils import timezone

from cohorts.models import Cohort
from cohortsync_site.text import count_of
from destinations.models import Destination
from syncs import codes
from syncs.errors import SyncRunConflict, SyncRunStateError
from syncs.models import (
    ACTIVE_RUN_STATUSES,
    RunPlanChunk,
    RunStatus,
    Sync,
    SyncedMember,
    SyncFailure,
    SyncRun,
)
from syncs.run_events import run_finished_notify
from syncs.schedules import (
    SYNC_SCHEDULE_FUNC,
    schedule_delete_for_sync,
    schedule_upsert,
    sync_schedule_name,
)
from syncs.selectors import run_failed_user_count, sync_active_run
from syncs.workers import worker_description, worker_is_gone

__all__ = [
    "SyncRunConflict",
    "SyncRunStateError",
    "runs_reap_stale",
    "sync_run_approve",
    "sync_run_cancel",
    "sync_run_create",
    "sync_run_execute",
    "sync_run_reject",
    "sync_run_request",
    "sync_run_retry_failed",
    "sync_runs_prune",
    "synced_state_orphans_delete",
    "sync_schedule_update",
    "sync_set_enabled",
    "sync_update",
    "syncs_create_for_cohorts",
]

logger = logging.getLogger(__name__)

EXECUTE_TASK = "syncs.tasks.execute_sync_run"
DEFAULT_STALE_RUN_MINUTES = 10
PRUNE_CHUNK = 500


# --- Requesting and running --------------------------------------------------------------


def _conflict(sync: Sync, active: SyncRun | None) -> SyncRunConflict:
    if active is not None and active.status == RunStatus.AWAITING_APPROVAL:
        return SyncRunConflict(
            f"Run #{active.pk} of '{sync.name}' is awaiting approval of its removals: approve "
            "or reject it before starting another run.",
            active_run=active,
        )
    what = f"run #{active.pk} is {active.status}" if active is not None else "a run is already active"
    return SyncRunConflict(
        f"'{sync.name}' already has a queued or running run ({what}); wait for it to finish "
        "or cancel it.",
        active_run=active,
    )


def _enqueue(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task(EXECUTE_TASK, run_id, q_options={"task_name": f"cohortsync:run:{run_id}"})


def sync_run_create(
    *,
    sync: Sync,
    trigger: str,
    requested_by: Any = None,
    dry_run: bool = False,
    full_resync: bool = False,
    retry_of: SyncRun | None = None,
    retry_non_retriable: bool = False,
) -> SyncRun:
    """A queued run that nobody has enqueued yet (run it with sync_run_execute), or
    SyncRunConflict. Dry runs may be planned while a run awaits approval."""
    runs_reap_stale(sync=sync)
    active = sync_active_run(sync)
    if active is not None and (active.status != RunStatus.AWAITING_APPROVAL or not dry_run):
        raise _conflict(sync, active)
    try:
        with transaction.atomic():
            return SyncRun.objects.create(
                sync=sync,
                trigger=trigger,
                triggered_by=requested_by if getattr(requested_by, "pk", None) else None,
                is_dry_run=dry_run,
                is_full_resync=full_resync,
                retry_of=retry_of,
                retry_non_retriable=retry_non_retriable,
            )
    except IntegrityError as exc:
        # Lost the race with another request: the partial unique index said no.
        active = sync_active_run(sync)
        if active is None:
            raise
        raise _conflict(sync, active) from exc


def sync_run_request(
    *,
    sync: Sync,
    trigger: str,
    requested_by: Any = None,
    dry_run: bool = False,
    full_resync: bool = False,
    retry_of: SyncRun | None = None,
) -> SyncRun:
    """Create a queued run and enqueue its task once the transaction commits.

    Raises SyncRunConflict when the sync has a queued or running run, or a run awaiting
    approval (a dry run is still allowed then: it sends nothing).
    """
    run = sync_run_create(
        sync=sync,
        trigger=trigger,
        requested_by=requested_by,
        dry_run=dry_run,
        full_resync=full_resync,
        retry_of=retry_of,
    )
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def sync_run_execute(*, run_id: int) -> SyncRun:
    """Claim the run (queued -> running) and carry it out in this process.

    A run that is no longer queued (already claimed, cancelled) is returned untouched, so a
    re-delivered task is a no-op.
    """
    from syncs.engine.runner import run_execute

    return run_execute(run_id=run_id)


def sync_run_scheduled_fire(*, sync_id: int) -> SyncRun | None:
    """What a schedule firing does: run now, or record a skipped run if one is active."""
    sync = Sync.objects.select_related("destination", "cohort").filter(pk=sync_id).first()
    if sync is None:
        schedule_delete_for_sync(sync_id=sync_id)
        return None
    if sync.mode != Sync.Mode.DYNAMIC or not sync.enabled:
        sync_schedule_update(sync=sync)
        return None
    # Scheduled imports feed the profiles every cohort is made of: one that is due (or
    # running) now goes first, so this run plans on fresh profiles (sources.services).
    from sources.services import imports_due_run_before_sync

    imports_due_run_before_sync()
    try:
        run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.SCHEDULE)
    except SyncRunConflict as conflict:
        active = conflict.active_run
        if active is not None and active.status == RunStatus.AWAITING_APPROVAL:
            # A skipped row per tick would bury the waiting run: count the ticks on it instead.
            SyncRun.objects.filter(pk=active.pk).update(skipped_ticks=F("skipped_ticks") + 1)
            active.refresh_from_db(fields=["skipped_ticks"])
            return active
        now = timezone.now()
        state = "awaiting approval" if active and active.status == RunStatus.AWAITING_APPROVAL else (
            active.status if active else "active"
        )
        return SyncRun.objects.create(
            sync=sync,
            trigger=SyncRun.Trigger.SCHEDULE,
            status=RunStatus.SKIPPED,
            started_at=now,
            finished_at=now,
            error_code=codes.PREVIOUS_RUN_ACTIVE,
            error_message=f"Previous run #{active.pk if active else '?'} still {state}; this "
            "scheduled run was skipped. The next scheduled run picks up all changes.",
        )
    return sync_run_execute(run_id=run.pk)


# --- Controls ----------------------------------------------------------------------------


def sync_run_cancel(*, run: SyncRun, requested_by: Any) -> SyncRun:
    """Queued or awaiting-approval runs are cancelled at once; a running run is asked to
    stop and stops after the batches in flight, recording what they did."""
    now = timezone.now()
    who = requested_by if getattr(requested_by, "pk", None) else None
    who_text = f" by {who}" if who else ""
    cancelled = SyncRun.objects.filter(
        pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.AWAITING_APPROVAL]
    ).update(
        status=RunStatus.CANCELLED,
        finished_at=now,
        cancel_requested_at=now,
        cancelled_by=who,
        error_code=codes.CANCELLED,
        error_message=f"Cancelled{who_text} before anything was sent.",
    )
    if cancelled:
        run_finished_notify(run_id=run.pk, status=RunStatus.CANCELLED)
    else:
        asked = SyncRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=now, cancelled_by=who)
        if not asked:
            run.refresh_from_db()
            if run.status != RunStatus.RUNNING:
                raise SyncRunStateError(
                    f"Run #{run.pk} is already {run.get_status_display().lower()}: nothing to cancel."
                )
    run.refresh_from_db()
    return run


def sync_run_reject(*, run: SyncRun, rejected_by: Any) -> SyncRun:
    """Discard a run held by the mass-removal guard: it ends cancelled, nothing is sent, and
    who rejected it is recorded. The next run plans afresh (and is held again if the cohort
    still says to remove that many)."""
    now = timezone.now()
    who = rejected_by if getattr(rejected_by, "pk", None) else None
    rejected = SyncRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
        status=RunStatus.CANCELLED,
        finished_at=now,
        cancel_requested_at=now,
        cancelled_by=who,
        error_code=codes.REJECTED,
        error_message=f"Rejected{f' by {who}' if who else ''}: the {run.planned_removes:,} removals "
        f"and {run.planned_adds:,} additions it held were not sent.",
    )
    run.refresh_from_db()
    if not rejected:
        raise SyncRunStateError(
            f"Run #{run.pk} is {run.get_status_display().lower()}, not awaiting approval: "
            "nothing to reject."
        )
    run_finished_notify(run_id=run.pk, status=RunStatus.CANCELLED)
    return run


def sync_run_approve(*, run: SyncRun, approved_by: Any) -> SyncRun:
    """Re-queue a run held by the mass-removal guard; it re-plans and sends, guard bypassed."""
    now = timezone.now()
    try:
        with transaction.atomic():
            approved = SyncRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
                status=RunStatus.QUEUED,
                approved_by=approved_by if getattr(approved_by, "pk", None) else None,
                approved_at=now,
                heartbeat_at=None,
                error_code="",
                error_message="",
            )
    except IntegrityError as exc:
        raise _conflict(run.sync, sync_active_run(run.sync)) from exc
    run.refresh_from_db()
    if not approved:
        raise SyncRunStateError(
            f"Run #{run.pk} is {run.get_status_display().lower()}, not awaiting approval: "
            "nothing to approve."
        )
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def sync_run_retry_failed(*, run: SyncRun, requested_by: Any, non_retriable: bool = False) -> SyncRun:
    """A new run (trigger retry) that re-sends only the users who failed in `run`, each with
    its current desired membership (a user acknowledged since then is not sent again).

    By default only failures a retry may fix (timeouts, throttling, server errors) are
    re-sent; `non_retriable` also re-sends those the destination refused for good (an
    invalid value, say), e.g. after fixing the data. Users skipped before sending (no
    identity) belong to the original run and are neither re-sent nor counted again."""
    if run_failed_user_count(run, non_retriable=non_retriable) == 0:
        if not non_retriable and run_failed_user_count(run, non_retriable=True):
            permanent = run_failed_user_count(run, non_retriable=True)
            raise SyncRunStateError(
                f"Run #{run.pk} has no retriable failures: {count_of(permanent, 'failed user')} "
                f"{'was' if permanent == 1 else 'were'} refused for a reason a retry does not "
                "change. Fix the cause, then use “Retry all failed users” to send them again."
            )
        raise SyncRunStateError(f"Run #{run.pk} has no failed users to retry.")
    created = sync_run_create(
        sync=run.sync, trigger=SyncRun.Trigger.RETRY, requested_by=requested_by, retry_of=run,
        retry_non_retriable=non_retriable,
    )
    transaction.on_commit(partial(_enqueue, created.pk))
    return created


def sync_set_enabled(*, sync: Sync, enabled: bool) -> Sync:
    sync.enabled = enabled
    sync.save(update_fields=["enabled", "updated_at"])
    sync_schedule_update(sync=sync)
    return sync


def sync_update(*, sync: Sync, changes: Mapping[str, Any]) -> Sync:
    """Apply field changes with the model's validation (frozen fields included) and keep the
    schedule in step. Raises django.core.exceptions.ValidationError."""
    for name, value in changes.items():
        setattr(sync, name, value)
    sync.full_clean()
    with transaction.atomic():
        sync.save()
        sync_schedule_update(sync=sync)
    return sync


def sync_schedule_update(*, sync: Sync) -> None:
    """Exactly one django-q2 schedule for an enabled dynamic sync; none otherwise (including
    a deleted sync). Safe to call any number of times."""
    exists = sync.pk is not None and Sync.objects.filter(pk=sync.pk).exists()
    if not exists or sync.mode != Sync.Mode.DYNAMIC or not sync.enabled:
        schedule_delete_for_sync(sync_id=sync.pk)
        return
    schedule_upsert(
        name=sync_schedule_name(sync.pk),
        func=SYNC_SCHEDULE_FUNC,
        args=repr((sync.pk,)),
        minutes=sync.effective_interval_minutes,
    )


# --- Housekeeping ------------------------------------------------------------------------


def runs_reap_stale(*, sync: Sync | None = None) -> int:
    """Mark runs whose worker died as failed, so the sync can run again.

    Running: its worker process is known to be gone (it ran on this machine and no longer
    exists, see syncs.workers), no heartbeat for COHORTSYNC_STALE_RUN_MINUTES (default 10;
    the engine beats at least every 30 s), or started longer ago than TASK_TIMEOUT_SECONDS
    (django-q2 killed it). Queued: not picked up within the queue's re-delivery time (the
    cluster is not running). sync_run_create calls this for its sync, so whoever asks for a
    run (run_sync, the admin, a schedule) frees the sync of a dead run at once.
    """
    now = timezone.now()
    stale_after = dt.timedelta(minutes=getattr(settings, "COHORTSYNC_STALE_RUN_MINUTES", DEFAULT_STALE_RUN_MINUTES))
    timeout = int(getattr(settings, "TASK_TIMEOUT_SECONDS", 3600))
    queue_wait = int(getattr(settings, "Q_CLUSTER", {}).get("retry", timeout + 600))
    runs = SyncRun.objects.all() if sync is None else SyncRun.objects.filter(sync_id=sync.pk)
    silent = (
        Q(heartbeat_at__lt=now - stale_after)
        | Q(heartbeat_at__isnull=True, started_at__lt=now - stale_after)
        | Q(started_at__lt=now - dt.timedelta(seconds=timeout + 60))
    )
    failed_ids: list[int] = []
    for run_id, heartbeat_at, worker, is_silent in (
        runs.filter(status=RunStatus.RUNNING)
        .annotate(is_silent=ExpressionWrapper(silent, output_field=BooleanField()))
        .values_list("pk", "heartbeat_at", "worker", "is_silent")
    ):
        if is_silent:
            since = timezone.localtime(heartbeat_at).strftime("%Y-%m-%d %H:%M %Z") if heartbeat_at else "its start"
            message = (
                f"The worker stopped while running this run (no sign of life since {since}): it "
                "was probably killed, restarted or timed out."
            )
        elif worker_is_gone(worker):
            message = (
                f"The worker process running this run ({worker_description(worker)}) is gone: it "
                "was killed or restarted."
            )
        else:
            continue
        # Only if it gave no sign of life since it was read (a beat or a new claim wins).
        if SyncRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, heartbeat_at=heartbeat_at).update(
            status=RunStatus.FAILED,
            finished_at=now,
            error_code=codes.WORKER_LOST,
            error_message=f"{message} Users acknowledged before that are kept; the next run "
            "sends the rest.",
        ):
            failed_ids.append(run_id)
    queued = runs.filter(status=RunStatus.QUEUED, created_at__lt=now - dt.timedelta(seconds=queue_wait))
    minutes = queue_wait // 60
    for run_id in queued.values_list("pk", flat=True):
        if SyncRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.FAILED,
            finished_at=now,
            error_code=codes.NOT_PICKED_UP,
            error_message=f"No worker picked up this run within {minutes} minutes. Check that the "
            "task cluster (`manage.py qcluster`) is running. Nothing was sent.",
        ):
            failed_ids.append(run_id)
    reaped = len(failed_ids)
    for run_id in failed_ids:
        run_finished_notify(run_id=run_id, status=RunStatus.FAILED)
    if reaped:
        logger.warning("Marked %s stale run(s) as failed", reaped)
    return reaped


def sync_runs_prune(*, older_than_days: int | None = None) -> int:
    """Delete finished runs (and their failures and plans) older than the retention; each sync's last
    run, and any run still active or awaiting approval, is kept. Returns runs deleted."""
    days = settings.COHORTSYNC_RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    last_ids = SyncRun.objects.values("sync_id").annotate(last_id=Max("id")).values("last_id")
    candidates = (
        SyncRun.objects.filter(created_at__lt=cutoff)
        .exclude(status__in=[*ACTIVE_RUN_STATUSES, RunStatus.AWAITING_APPROVAL])
        .exclude(pk__in=last_ids)
    )
    deleted = 0
    while True:
        ids = list(candidates.order_by("pk").values_list("pk", flat=True)[:PRUNE_CHUNK])
        if not ids:
            return deleted
        with transaction.atomic():
            # Failures and plans first, one DELETE per chunk, so the cascade has nothing left
            # to load.
            SyncFailure.objects.filter(run_id__in=ids).delete()
            RunPlanChunk.objects.filter(run_id__in=ids).delete()
            _, per_model = SyncRun.objects.filter(pk__in=ids).delete()
            deleted += per_model.get(SyncRun._meta.label, 0)


def synced_state_orphans_delete() -> int:
    """Delete the synced state of syncs that no longer exist (it has no foreign key in the
    database, see SyncedMember.sync: a run still writing when its sync was deleted leaves
    rows behind). Returns the rows deleted."""
    deleted, _ = SyncedMember.objects.exclude(sync_id__in=Sync.objects.values("pk")).delete()
    return deleted


# --- Creating syncs ----------------------------------------------------------------------


def syncs_create_for_cohorts(*, cohorts: Iterable[Cohort], destination: Destination, mode: str,
                             identity_property: str, target_fields: dict[int, str],
                             created_by: Any) -> list[Sync]:
    """One sync per cohort into `destination`, each with a first run requested.

    Runs and schedules are enqueued after the surrounding transaction commits. Raises
    django.core.exceptions.ValidationError (and writes nothing) when a sync breaks the
    model's rules, e.g. a field another sync writes on the same account.
    """
    created: list[Sync] = []
    with transaction.atomic():
        for cohort in cohorts:
            sync = Sync(
                name=f"{cohort.name} → {destination.name}",
                cohort=cohort,
                destination=destination,
                target_field=target_fields[cohort.pk],
                identity_property=identity_property,
                mode=mode,
                created_by=created_by,
            )
            # The model's rules (one field per destination account above all) hold here too.
            sync.full_clean()
            sync.save()
            transaction.on_commit(partial(sync_schedule_update, sync=sync))
            sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL, requested_by=created_by)
            created.append(sync)
    return created
