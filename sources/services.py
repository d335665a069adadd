"""Write-side services for sources, profile imports and SQL cohorts. Admin, commands,
tasks, the sync engine and `apply` call these only."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from cohorts.importing import cohort_static_members_replace
from cohorts.models import Cohort
from sources.connections import SourceCheck, SourceError, source_probe, source_query
from sources.imports import import_run_execute
from sources.models import ACTIVE_IMPORT_STATUSES, ImportRun, ImportRunStatus, ProfileImport, Source
from sources.schedules import import_last_slot
from sources.values import ValueConversionError, property_value

logger = logging.getLogger(__name__)

EXECUTE_TASK = "sources.tasks.execute_import_run"
DEFAULT_STALE_RUN_MINUTES = 10
# How long a scheduled sync waits for a running import before planning without it.
DEFAULT_IMPORT_WAIT_SECONDS = 600
WAIT_POLL_SECONDS = 1.0


class ImportRunConflict(Exception):
    """The import already has a queued or running run."""

    def __init__(self, message: str, *, active_run: ImportRun | None) -> None:
        super().__init__(message)
        self.message = message
        self.active_run = active_run


# --- Sources ---------------------------------------------------------------------------------


def source_check_connection(*, source: Source) -> SourceCheck:
    """Connect read-only, run a trivial query, and record the outcome on the source."""
    try:
        check = source_probe(source)
    except Exception:  # a decryption failure, a driver bug: reported, never raised to a page
        logger.exception("Checking source %s failed unexpectedly", source.pk)
        check = SourceCheck(ok=False, summary="CohortSync hit an unexpected error; see the log.")
    Source.objects.filter(pk=source.pk).update(
        connection_checked_at=timezone.now(),
        is_connected=check.ok,
        connection_error="" if check.ok else check.summary,
        connection_summary=check.summary if check.ok else "",
    )
    return check


# --- Profile imports -------------------------------------------------------------------------

# A high-water mark means "rows past this value of this column of this query": it is
# meaningless once any of them changes, so the next run reads everything.
HIGH_WATER_FIELDS = frozenset({"sql", "source", "incremental_column"})


def profile_import_save(*, profile_import: ProfileImport, changed: Iterable[str] = ()) -> ProfileImport:
    """Save an import (new, or with these fields changed) and keep its schedule in step."""
    from sources.schedules import import_schedule_update

    if profile_import.pk is not None and HIGH_WATER_FIELDS & set(changed):
        profile_import.high_water_mark = None
    with transaction.atomic():
        profile_import.save()
        transaction.on_commit(partial(import_schedule_update, profile_import=profile_import))
    return profile_import


# --- SQL cohorts -----------------------------------------------------------------------------


def _member_ids(batches: Any, index: int) -> Any:
    zone = dt.UTC
    for batch in batches:
        for row in batch:
            try:
                value = property_value(row[index], zone=zone)  # type: ignore[arg-type]
            except ValueConversionError:
                continue
            if value is not None:
                yield str(value)


def cohort_refresh(*, cohort: Cohort) -> int:
    """Read an SQL cohort's distinct ids from its source and store them as its members;
    returns how many ids it lists. On failure the members stay as they were, the error is
    recorded on the cohort, and SourceError is raised."""
    if cohort.kind != Cohort.Kind.SQL or cohort.source_id is None:
        raise SourceError(f"The cohort '{cohort.name}' is not an SQL cohort with a source.",
                          code="not_sql_cohort")
    source = Source.objects.defer("password").get(pk=cohort.source_id)
    try:
        with source_query(source, sql=cohort.sql) as stream:
            lowered = [name.lower() for name in stream.columns]
            if "distinct_id" in lowered:
                index = lowered.index("distinct_id")
            elif len(stream.columns) == 1:
                index = 0
            else:
                raise SourceError(
                    f"The query returns {len(stream.columns)} columns and none is called "
                    "distinct_id: return the ids as distinct_id (SELECT id AS distinct_id ...).",
                    code="invalid_columns",
                )
            with transaction.atomic():
                # One refresh at a time per cohort (two syncs of one cohort starting together).
                Cohort.objects.select_for_update().filter(pk=cohort.pk).first()
                try:
                    count = cohort_static_members_replace(
                        cohort=cohort, distinct_ids=_member_ids(stream.batches, index)
                    )
                except ValueError as exc:
                    raise SourceError(str(exc).replace("Line", "Row"), code="invalid_rows") from None
    except SourceError as exc:
        Cohort.objects.filter(pk=cohort.pk).update(refresh_error=exc.message)
        cohort.refresh_error = exc.message
        raise
    now = timezone.now()
    Cohort.objects.filter(pk=cohort.pk).update(refreshed_at=now, refresh_error="")
    cohort.refreshed_at, cohort.refresh_error = now, ""
    return count


# --- Import runs ---------------------------------------------------------------------------------


def import_runs_reap_stale(*, profile_import: ProfileImport | None = None) -> int:
    """Mark import runs whose worker died as failed, so the import can run again."""
    now = timezone.now()
    stale_after = dt.timedelta(
        minutes=getattr(settings, "COHORTSYNC_STALE_RUN_MINUTES", DEFAULT_STALE_RUN_MINUTES)
    )
    queue_wait = int(getattr(settings, "Q_CLUSTER", {}).get("retry", 4200))
    runs = ImportRun.objects.all()
    if profile_import is not None:
        runs = runs.filter(profile_import_id=profile_import.pk)
    reaped = runs.filter(status=ImportRunStatus.RUNNING).filter(
        Q(heartbeat_at__lt=now - stale_after) | Q(heartbeat_at__isnull=True, started_at__lt=now - stale_after)
    ).update(
        status=ImportRunStatus.FAILED,
        finished_at=now,
        error_code="worker_lost",
        error_message="The worker stopped while running this import (no sign of life for "
        f"{stale_after.seconds // 60} minutes). What it wrote is kept; the high-water mark "
        "did not move, so the next run reads those rows again.",
    )
    reaped += runs.filter(
        status=ImportRunStatus.QUEUED, created_at__lt=now - dt.timedelta(seconds=queue_wait)
    ).update(
        status=ImportRunStatus.FAILED,
        finished_at=now,
        error_code="not_picked_up",
        error_message="No worker picked up this import. Check that the task cluster "
        "(`manage.py qcluster`) is running.",
    )
    return reaped


def import_runs_prune(*, older_than_days: int | None = None) -> int:
    """Delete finished import runs older than the retention (COHORTSYNC_RUN_RETENTION_DAYS);
    each import's last run, and any active one, is kept. Returns runs deleted."""
    days = settings.COHORTSYNC_RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    last_ids = ImportRun.objects.values("profile_import_id").annotate(last_id=Max("id")).values("last_id")
    old = ImportRun.objects.filter(created_at__lt=cutoff).exclude(status__in=ACTIVE_IMPORT_STATUSES)
    deleted, _ = old.exclude(pk__in=last_ids).delete()
    return deleted


def import_active_run(profile_import: ProfileImport) -> ImportRun | None:
    return (
        ImportRun.objects.filter(profile_import_id=profile_import.pk, status__in=ACTIVE_IMPORT_STATUSES)
        .order_by("-created_at")
        .first()
    )


def import_run_create(
    *, profile_import: ProfileImport, trigger: str, full: bool = False, requested_by: Any = None
) -> ImportRun:
    """A queued run nobody has enqueued yet, or ImportRunConflict."""
    import_runs_reap_stale(profile_import=profile_import)
    try:
        with transaction.atomic():
            return ImportRun.objects.create(
                profile_import=profile_import,
                trigger=trigger,
                is_full=full,
                triggered_by=requested_by if getattr(requested_by, "pk", None) else None,
            )
    except IntegrityError as exc:
        active = import_active_run(profile_import)
        what = f"run #{active.pk} is {active.status}" if active else "a run is active"
        raise ImportRunConflict(
            f"'{profile_import.name}' is already importing ({what}); wait for it to finish.",
            active_run=active,
        ) from exc


def _enqueue(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task(EXECUTE_TASK, run_id, q_options={"task_name": f"cohortsync:import-run:{run_id}"})


def import_run_request(
    *, profile_import: ProfileImport, trigger: str, full: bool = False, requested_by: Any = None
) -> ImportRun:
    """Create a queued run and enqueue it once the transaction commits."""
    run = import_run_create(
        profile_import=profile_import, trigger=trigger, full=full, requested_by=requested_by
    )
    transaction.on_commit(partial(_enqueue, run.pk))
    return run


def import_run_claim(*, run_id: int) -> bool:
    now = timezone.now()
    return (
        ImportRun.objects.filter(pk=run_id, status=ImportRunStatus.QUEUED).update(
            status=ImportRunStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        == 1
    )


def import_run_process(*, run_id: int) -> ImportRun:
    """Claim the run and carry it out in this process; a run already claimed (a task
    delivered twice) is returned untouched."""
    if not import_run_claim(run_id=run_id):
        return ImportRun.objects.get(pk=run_id)
    run = ImportRun.objects.get(pk=run_id)
    try:
        import_run_execute(run=run)
    except Exception:
        logger.exception("Import run %s failed unexpectedly", run_id)
        now = timezone.now()
        ImportRun.objects.filter(pk=run_id, status=ImportRunStatus.RUNNING).update(
            status=ImportRunStatus.FAILED,
            finished_at=now,
            heartbeat_at=now,
            error_code="internal_error",
            error_message="CohortSync hit an unexpected error; see the worker log. What was "
            "written before it is kept; the next run reads the same rows again.",
        )
    run.refresh_from_db()
    return run


def import_is_due(*, profile_import: ProfileImport, now: dt.datetime) -> bool:
    """Its schedule's latest slot has passed and no run started since."""
    slot = import_last_slot(profile_import=profile_import, now=now)
    if slot is None:
        return False
    last = (
        ImportRun.objects.filter(profile_import_id=profile_import.pk)
        .exclude(status=ImportRunStatus.SKIPPED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return last is None or last < slot


def import_scheduled_fire(*, import_id: int) -> ImportRun | None:
    """What an import's schedule firing does: run it now, unless a scheduled sync ran it
    for this slot already (None), or record a skipped run while one is active."""
    from sources.schedules import import_schedule_update

    profile_import = ProfileImport.objects.filter(pk=import_id).first()
    if profile_import is None:
        from sources.schedules import import_schedule_delete

        import_schedule_delete(import_id=import_id)
        return None
    if not profile_import.enabled or not profile_import.every_minutes:
        import_schedule_update(profile_import=profile_import)
        return None
    if not import_is_due(profile_import=profile_import, now=timezone.now()):
        return None
    try:
        run = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.SCHEDULE)
    except ImportRunConflict as conflict:
        now = timezone.now()
        active = conflict.active_run
        return ImportRun.objects.create(
            profile_import=profile_import,
            trigger=ImportRun.Trigger.SCHEDULE,
            status=ImportRunStatus.SKIPPED,
            started_at=now,
            finished_at=now,
            error_code="previous_run_active",
            error_message=f"Run #{active.pk if active else '?'} was still going; this scheduled "
            "run was skipped. The next one reads everything since the last successful run.",
        )
    return import_run_process(run_id=run.pk)


def imports_due_run_before_sync() -> list[ImportRun]:
    """Before a scheduled sync plans, the scheduled imports that feed profiles come first:
    each one that is due now is run here (its own scheduled task then finds it done), and
    each one that is running is waited for, up to COHORTSYNC_IMPORT_WAIT_SECONDS. Returns
    the runs this call carried out."""
    deadline = time.monotonic() + float(
        getattr(settings, "COHORTSYNC_IMPORT_WAIT_SECONDS", DEFAULT_IMPORT_WAIT_SECONDS)
    )
    ran: list[ImportRun] = []
    imports = ProfileImport.objects.filter(enabled=True, every_minutes__isnull=False).order_by("pk")
    for profile_import in imports:
        if import_is_due(profile_import=profile_import, now=timezone.now()):
            try:
                run = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.BEFORE_SYNC)
            except ImportRunConflict:
                pass  # its own task claimed it a moment ago: wait for it below
            else:
                ran.append(import_run_process(run_id=run.pk))
                continue
        while import_active_run(profile_import) is not None and time.monotonic() < deadline:
            import_runs_reap_stale(profile_import=profile_import)
            time.sleep(WAIT_POLL_SECONDS)
        if import_active_run(profile_import) is not None:
            logger.warning("A scheduled sync stopped waiting for import %s", profile_import.pk)
    return ran
