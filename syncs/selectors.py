"""Read-side queries over syncs, runs and synced state."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import CharField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django_q.models import Schedule

from cohorts.models import Profile
from cohortsync_site.database import PageCount, page_count
from destinations.budget import daily_quota_status
from destinations.kindspec import CallProjection
from syncs.models import (
    ACTIVE_RUN_STATUSES,
    FROZEN_SYNC_FIELDS,
    RunPlanChunk,
    RunStatus,
    Sync,
    SyncedMember,
    SyncFailure,
    SyncRun,
)
from syncs.schedules import SYNC_SCHEDULE_PREFIX, sync_schedule_name

RETRIABLE_OPERATIONS = (SyncFailure.Operation.ADD, SyncFailure.Operation.REMOVE)
# Where a dry run (or a run the mass-removal guard holds) keeps its projected API calls in
# SyncRun.plan_sample (written by syncs.engine.runner).
PROJECTION_KEY = "projected_api_calls"

logger = logging.getLogger(__name__)


def sync_is_frozen(sync: Sync) -> bool:
    """True once the destination has acknowledged users of this sync."""
    if sync.pk is None:
        return False
    return sync_has_synced_state(sync_id=sync.pk)


def sync_has_synced_state(*, sync_id: int) -> bool:
    """Whether any user of the sync is acknowledged (as a member or not).

    Read along the state's unique index (sync, identity): a bare `LIMIT 1` led PostgreSQL
    to read the table from its start, expecting one of the sync's rows every N rows of N
    syncs, while each sync's rows lie together (the 31st of 60 syncs of 100k: 26,000
    pages, 0.4 s). (`exists()` would drop the ordering that picks the index.)"""
    first = SyncedMember.objects.filter(sync_id=sync_id).order_by("identity_value")
    return bool(first.values_list("identity_value", flat=True)[:1])


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


@dataclass(frozen=True)
class CallForecast:
    """What sending a planned run would cost: its projected API calls (kept by the run when
    it was planned) and, where the destination account has a daily quota, how much of it is
    left now and when it resets (None when unknown)."""

    calls: CallProjection
    daily_quota: int | None = None
    daily_quota_left: int | None = None
    quota_resets_at: dt.datetime | None = None


def run_call_forecast(run: SyncRun) -> CallForecast | None:
    """The run's projected API calls (dry runs and runs awaiting approval), or None."""
    sample = run.plan_sample if isinstance(run.plan_sample, dict) else {}
    calls = CallProjection.from_stored(sample.get(PROJECTION_KEY))
    if calls is None:
        return None
    try:
        quota = daily_quota_status(run.sync.destination)
    except Exception:
        # Options edited into something unreadable since, or the budget store unreachable:
        # the quota left is an aside, and the page (or the dry run's output) goes on without it.
        logger.warning("Could not read the daily quota left for run %s", run.pk, exc_info=True)
        quota = None
    if quota is None:
        return CallForecast(calls=calls)
    return CallForecast(calls=calls, daily_quota=quota.quota, daily_quota_left=quota.left,
                        quota_resets_at=quota.resets_at)


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


def sync_acknowledged_member_page_count(sync: Sync) -> PageCount:
    """The acknowledged members a page shows: exact, or PostgreSQL's estimate for millions."""
    return page_count(SyncedMember.objects.filter(sync_id=sync.pk, is_member=True))


def run_failed_user_count(run: SyncRun, *, non_retriable: bool = True) -> int:
    """Users of the run that a retry would re-send (skipped users have nothing to send):
    every failed user, or with `non_retriable=False` only those whose failure a retry may
    fix."""
    return run_retry_failures(run.pk, non_retriable=non_retriable).count()


def run_retry_failures(run_id: int, *, non_retriable: bool) -> QuerySet[SyncFailure]:
    """The failures of a run that a retry re-sends (see SyncRun.retry_non_retriable)."""
    failures = SyncFailure.objects.filter(run_id=run_id, operation__in=RETRIABLE_OPERATIONS)
    return failures if non_retriable else failures.filter(retriable=True)


def run_failures(run: SyncRun) -> QuerySet[SyncFailure]:
    """The run's failures in id order, read through the (run, id) index. The run is matched
    as a range of one value, not an equality: PostgreSQL then orders by (run, id) as the
    index does, instead of walking the primary key from the table's first failure, which it
    did when the run held most rows (500,000 rows read for 51, in 0.4 s)."""
    return SyncFailure.objects.filter(run_id__gte=run.pk, run_id__lte=run.pk).order_by("run_id", "id")


def runs_for_sync(sync: Sync) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(sync_id=sync.pk).order_by("-created_at", "-id")


def cohort_syncs_with_counts(cohort_id: int) -> list[tuple[Sync, PageCount]]:
    """The syncs of a cohort, each with its acknowledged members (one indexed count per
    sync: a cohort has a handful; estimated for syncs of millions)."""
    syncs = (
        Sync.objects.filter(cohort_id=cohort_id)
        .select_related("destination")
        .defer("destination__client_secret")
        .order_by("name")
    )
    return [(sync, sync_acknowledged_member_page_count(sync)) for sync in syncs]


# --- Run history and trends --------------------------------------------------------------

RECENT_RUNS = 30


@dataclass(frozen=True)
class RunPoint:
    """One run as the history strip and the trend charts show it."""

    run_id: int
    sync_id: int
    status: str
    is_dry_run: bool
    created_at: dt.datetime
    finished_at: dt.datetime | None
    planned_adds: int
    planned_removes: int
    added: int
    removed: int
    failed: int
    skipped: int
    acknowledged_members: int | None

    @property
    def moment(self) -> dt.datetime:
        return self.finished_at or self.created_at


_POINT_FIELDS = (
    "pk", "sync_id", "status", "is_dry_run", "created_at", "finished_at", "planned_adds",
    "planned_removes", "succeeded_adds", "succeeded_removes", "failed_adds", "failed_removes",
    "skipped_users", "acknowledged_members",
)


def _run_point(row: tuple) -> RunPoint:
    (pk, sync_id, status, dry, created, finished, planned_adds, planned_removes, added, removed,
     failed_adds, failed_removes, skipped, acknowledged) = row
    return RunPoint(
        run_id=pk, sync_id=sync_id, status=status, is_dry_run=dry, created_at=created,
        finished_at=finished, planned_adds=planned_adds, planned_removes=planned_removes,
        added=added, removed=removed, failed=failed_adds + failed_removes, skipped=skipped,
        acknowledged_members=acknowledged,
    )


def syncs_recent_runs(*, sync_ids: Iterable[int], limit: int = RECENT_RUNS) -> dict[int, list[RunPoint]]:
    """Each sync's latest `limit` runs, oldest first (skipped ticks left out: they did
    nothing), in two queries whatever the number of syncs and the length of their history:
    each sync's `limit`-th latest run is found through the (sync, created_at) index, then
    every run since it is read through the same index."""
    ids = list(sync_ids)
    if not ids or limit <= 0:
        return {}
    shown = SyncRun.objects.exclude(status=RunStatus.SKIPPED)
    latest = shown.filter(sync_id=OuterRef("pk")).order_by("-created_at", "-id")
    since = Sync.objects.filter(pk__in=ids).annotate(
        history_since=Subquery(latest.values("created_at")[limit - 1 : limit])
    )
    condition = Q()
    for sync_id, moment in since.values_list("pk", "history_since"):
        condition |= Q(sync_id=sync_id, created_at__gte=moment) if moment else Q(sync_id=sync_id)
    history: dict[int, list[RunPoint]] = {sync_id: [] for sync_id in ids}
    if not condition:
        return history
    rows = shown.filter(condition).order_by("sync_id", "created_at", "id").values_list(*_POINT_FIELDS)
    for row in rows:
        history[row[1]].append(_run_point(row))
    # Runs created in the same instant as the oldest one shown may add a few.
    return {sync_id: points[-limit:] for sync_id, points in history.items()}


# --- A run's progress --------------------------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    """How far a run is, from its counters only (no identity)."""

    status: str
    is_live: bool
    planned: int
    attempted: int
    succeeded: int
    failed: int
    skipped: int
    api_calls: int
    elapsed_seconds: float | None
    rate_per_second: float | None
    eta_seconds: float | None

    @property
    def fraction(self) -> float:
        if self.planned <= 0:
            return 0.0 if self.is_live else 1.0
        return min(1.0, self.attempted / self.planned)


def run_progress(run: SyncRun, *, now: dt.datetime | None = None) -> RunProgress:
    """Users attempted of those planned, the rate since the run started and, while it runs,
    the time left at that rate. A first export's plan grows while it sends, so its estimate
    covers the users planned so far."""
    now = now or timezone.now()
    planned = run.planned_adds + run.planned_removes
    attempted = run.attempted_adds + run.attempted_removes
    is_live = run.status in ACTIVE_RUN_STATUSES
    elapsed = rate = eta = None
    if run.started_at is not None:
        end = run.finished_at if run.finished_at and not is_live else now
        elapsed = max(0.0, (end - run.started_at).total_seconds())
        if elapsed > 0 and attempted:
            rate = attempted / elapsed
            if is_live and planned > attempted:
                eta = (planned - attempted) / rate
    return RunProgress(
        status=run.status,
        is_live=is_live,
        planned=planned,
        attempted=attempted,
        succeeded=run.succeeded_adds + run.succeeded_removes,
        failed=run.failed_adds + run.failed_removes,
        skipped=run.skipped_users,
        api_calls=run.api_calls,
        elapsed_seconds=elapsed,
        rate_per_second=rate,
        eta_seconds=eta,
    )


# --- A run's plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedUser:
    operation: str  # "add" or "remove"
    identity: str
    distinct_id: str


def run_planned_users(run: SyncRun) -> Iterator[PlannedUser]:
    """Every user the run planned to add or remove, each once, in plan order (within a
    chunk of ledger.PLAN_RECORD_ROWS, in no particular order). Reads one chunk at a time,
    so memory stays flat whatever the plan's size."""
    chunks = (
        RunPlanChunk.objects.filter(run_id=run.pk)
        .order_by("first_seq", "-is_member")
        .values_list("is_member", "identities", "profile_ids")
    )
    for is_member, identities_json, profile_ids_json in chunks.iterator(chunk_size=2):
        identities: list[str] = json.loads(identities_json)
        profile_ids: list[int | None] = json.loads(profile_ids_json)
        distinct_ids: dict[int, str] = {}
        known = [profile_id for profile_id in profile_ids if profile_id is not None]
        if known:
            distinct_ids = dict(Profile.objects.filter(pk__in=known).values_list("pk", "distinct_id"))
        operation = "add" if is_member else "remove"
        for identity, profile_id in zip(identities, profile_ids, strict=True):
            distinct_id = distinct_ids.get(profile_id, "") if profile_id is not None else ""
            yield PlannedUser(operation=operation, identity=identity, distinct_id=distinct_id)


def run_plan_is_recorded(run: SyncRun) -> bool:
    """Runs made before plans were recorded have only a sample."""
    if run.planned_adds + run.planned_removes == 0:
        return True
    return RunPlanChunk.objects.filter(run_id=run.pk).exists()


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
