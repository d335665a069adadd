"""What the sync admin shows: badges, timings, listing annotations, plan samples, pages
of failures that are never counted, and the dashboard rows. Read-only: nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from syncs.models import ACTIVE_RUN_STATUSES, RunStatus, Sync, SyncFailure, SyncRun
from syncs.selectors import sync_acknowledged_member_count, sync_schedules_next_run

FAILURES_PAGE_SIZE = 50
DASHBOARD_LIMIT = 50
RUN_PAGE_REFRESH_SECONDS = 5
# Failure codes offered in the filter: read from the newest rows only, never the whole table.
RECENT_CODES_WINDOW = 5000
PLAN_SAMPLE_SHOWN = 50

ATTENTION_STATUSES = (RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.AWAITING_APPROVAL)

STATUS_STYLE = {
    RunStatus.QUEUED: ("#4a5568", "#edf2f7"),
    RunStatus.RUNNING: ("#1e4e8c", "#dbeafe"),
    RunStatus.AWAITING_APPROVAL: ("#7a4b00", "#fdecc8"),
    RunStatus.SUCCEEDED: ("#1d6b3a", "#d9f2e3"),
    RunStatus.PARTIAL: ("#8a4b00", "#fde2c4"),
    RunStatus.FAILED: ("#9b1c1c", "#fde0e0"),
    RunStatus.CANCELLED: ("#4a5568", "#e2e8f0"),
    RunStatus.SKIPPED: ("#4a5568", "#e2e8f0"),
}


# --- Small displays ----------------------------------------------------------------------


def status_badge(run: SyncRun | None = None, *, status: str = "") -> str:
    status = run.status if run is not None else status
    try:
        label = RunStatus(status).label
    except ValueError:
        label = status
    foreground, background = STATUS_STYLE.get(status, ("#4a5568", "#edf2f7"))
    return format_html(
        '<span class="run-status run-status-{}" style="color:{};background:{};padding:1px 7px;'
        'border-radius:9px;white-space:nowrap;font-weight:600">{}</span>',
        status,
        foreground,
        background,
        label,
    )


def run_duration_display(run: SyncRun) -> str:
    seconds = run.duration_seconds
    if seconds is None:
        if run.started_at and run.status in ACTIVE_RUN_STATUSES:
            seconds = (timezone.now() - run.started_at).total_seconds()
            return f"{_seconds_display(seconds)} so far"
        return "—"
    return _seconds_display(seconds)


def _seconds_display(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def run_counts_summary(succeeded: int, failed: int) -> str:
    return f"{succeeded:,} ✓ / {failed:,} ✗"


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    if moment <= timezone.now():
        return f"{timesince(moment, depth=1)} ago"
    return f"in {timesince(timezone.now(), moment, depth=1)}"


# --- Sync listing ------------------------------------------------------------------------


def syncs_for_listing(queryset: QuerySet[Sync] | None = None) -> QuerySet[Sync]:
    """Syncs with their last run and schedule annotated, in one query.

    The destination's secret is deferred: listing syncs must never decrypt it.
    """
    queryset = Sync.objects.all() if queryset is None else queryset
    # The last run is the latest that did something: a skipped tick never hides a failure.
    last_run = (
        SyncRun.objects.filter(sync=OuterRef("pk"))
        .exclude(status=RunStatus.SKIPPED)
        .order_by("-created_at", "-id")
    )
    # A run awaiting approval needs someone until it is approved or rejected, even when a
    # dry run was made after it.
    waiting = SyncRun.objects.filter(sync=OuterRef("pk"), status=RunStatus.AWAITING_APPROVAL).order_by("-id")
    return (
        queryset.select_related("cohort", "destination")
        .defer("destination__client_secret")
        .annotate(
            last_run_id=Subquery(last_run.values("pk")[:1]),
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
            last_run_finished_at=Subquery(last_run.values("finished_at")[:1]),
            awaiting_run_id=Subquery(waiting.values("pk")[:1]),
            awaiting_planned_removes=Subquery(waiting.values("planned_removes")[:1]),
            next_run_at=sync_schedules_next_run(),
        )
    )


def last_run_link(sync: Sync, *, with_counts: bool = False) -> str:
    run_id = getattr(sync, "last_run_id", None)
    if run_id is None:
        return "Never run"
    url = reverse("admin:syncs_syncrun_change", args=[run_id])
    moment = getattr(sync, "last_run_finished_at", None) or getattr(sync, "last_run_at", None)
    badge = status_badge(status=sync.last_run_status)  # type: ignore[attr-defined]
    if not with_counts:
        return format_html('<a href="{}">{}</a> {}', url, badge, _when(moment))
    return format_html('<a href="{}">Run #{}</a> {} {}', url, run_id, badge, _when(moment))


def next_run_display(sync: Sync) -> str:
    if sync.mode != Sync.Mode.DYNAMIC:
        return "—"
    if not sync.enabled:
        return "— (disabled)"
    next_run = getattr(sync, "next_run_at", None)
    if next_run is None:
        return "Not scheduled"
    overdue = sync_overdue_by(sync)
    if overdue is not None:
        return format_html(
            '<span style="color:#9b1c1c" title="The task cluster may not be running">'
            "Overdue since {}</span>",
            _when(next_run),
        )
    return _when(next_run)


def sync_overdue_by(sync: Sync) -> dt.timedelta | None:
    """How late a dynamic sync's schedule is, when later than one interval."""
    next_run = getattr(sync, "next_run_at", None)
    if sync.mode != Sync.Mode.DYNAMIC or not sync.enabled or next_run is None:
        return None
    late = timezone.now() - next_run
    if late > dt.timedelta(minutes=sync.effective_interval_minutes):
        return late
    return None


def acknowledged_members_display(sync: Sync) -> str:
    # One sync, counted through the (sync, is_member) index: cheap enough for one page.
    count = sync_acknowledged_member_count(sync)
    return f"{count:,} members acknowledged by the destination"


def frozen_note(sync: Sync) -> str:
    new_url = reverse("admin:syncs_sync_add") + "?" + urlencode(
        {
            "cohort": sync.cohort_id,
            "destination": sync.destination_id,
            "identity_property": sync.identity_property,
        }
    )
    return format_html(
        "The destination, target field and identity property can no longer be changed: the "
        "destination has acknowledged users of this sync, and they were written under the "
        "current field and identity. Changing them would orphan those users (their old field "
        "would never be cleared). <a href=\"{}\">Create a new sync instead</a>.",
        new_url,
    )


# --- Run detail page ---------------------------------------------------------------------


@dataclass(frozen=True)
class CountsRow:
    label: str
    planned: int
    attempted: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class PlanSample:
    adds: list[str]
    removes: list[str]


def plan_sample_rows(run: SyncRun) -> PlanSample:
    """The sample as lists of identities, whatever shape the engine stored each user in."""
    sample = run.plan_sample if isinstance(run.plan_sample, dict) else {}

    def identities(key_names: tuple[str, ...]) -> list[str]:
        for key in key_names:
            values = sample.get(key)
            if isinstance(values, list):
                return [_sample_identity(v) for v in values[:PLAN_SAMPLE_SHOWN]]
        return []

    return PlanSample(
        adds=identities(("add", "adds", "to_add")),
        removes=identities(("remove", "removes", "to_remove")),
    )


def _sample_identity(value: Any) -> str:
    if isinstance(value, dict):
        identity = value.get("identity") or value.get("identity_value") or ""
        distinct_id = value.get("distinct_id") or ""
        if identity and distinct_id and identity != distinct_id:
            return f"{identity} ({distinct_id})"
        return str(identity or distinct_id)
    return str(value)


def page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def run_failures_page(run: SyncRun, *, query: str, page: int) -> tuple[list[SyncFailure], bool]:
    """One page of a run's failures and whether another follows: LIMIT+1, never COUNT(*)."""
    failures = SyncFailure.objects.filter(run=run).order_by("id")
    query = query.strip()
    if query:
        failures = failures.filter(
            Q(identity_value=query) | Q(distinct_id=query) | Q(code=query)
        )
    offset = (page - 1) * FAILURES_PAGE_SIZE
    rows = list(failures[offset : offset + FAILURES_PAGE_SIZE + 1])
    return rows[:FAILURES_PAGE_SIZE], len(rows) > FAILURES_PAGE_SIZE


def run_detail_context(request: HttpRequest, run: SyncRun) -> dict[str, Any]:
    query = request.GET.get("q", "")
    page = page_number(request.GET.get("page"))
    failures, has_next = run_failures_page(run, query=query, page=page)
    base = reverse("admin:syncs_syncrun_change", args=[run.pk])

    def page_url(number: int) -> str:
        return f"{base}?{urlencode({'q': query, 'page': number} if query else {'page': number})}"

    is_live = run.status in ACTIVE_RUN_STATUSES
    return {
        "run": run,
        "run_badge": status_badge(run),
        "run_duration": run_duration_display(run),
        "counts": [
            CountsRow("Add (set member)", run.planned_adds, run.attempted_adds,
                      run.succeeded_adds, run.failed_adds),
            CountsRow("Remove (set not member)", run.planned_removes, run.attempted_removes,
                      run.succeeded_removes, run.failed_removes),
        ],
        "plan": plan_sample_rows(run),
        "failures": failures,
        "failures_query": query,
        "failures_page": page,
        "failures_previous_url": page_url(page - 1) if page > 1 else "",
        "failures_next_url": page_url(page + 1) if has_next else "",
        "failures_recorded": run.failed_adds + run.failed_removes + run.skipped_users,
        "failures_csv_url": reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]),
        "failures_changelist_url": reverse("admin:syncs_syncfailure_changelist")
        + f"?run__id__exact={run.pk}",
        "refresh_seconds": RUN_PAGE_REFRESH_SECONDS if is_live else 0,
        # A run awaiting approval is rejected instead (recorded as such).
        "can_cancel": run.status in ACTIVE_RUN_STATUSES,
        "can_approve": run.status == RunStatus.AWAITING_APPROVAL,
        "can_retry": run.status not in ACTIVE_RUN_STATUSES
        and run.failed_adds + run.failed_removes > 0,
    }


# --- The failure changelist ------------------------------------------------------------


def recent_failure_codes() -> list[str]:
    recent = SyncFailure.objects.order_by("-id").values_list("code", flat=True)[:RECENT_CODES_WINDOW]
    return sorted(set(recent))


class LargeTablePaginator(Paginator):
    """Pages of a table too big to count: knows only whether the next page exists.

    `count` is the rows before this page plus what this page and one more row hold, so the
    admin shows "next" links without a COUNT(*) over millions of rows.
    """

    def __init__(self, object_list: QuerySet, per_page: int, orphans: int = 0,
                 allow_empty_first_page: bool = True, *, page_number: int = 1) -> None:
        super().__init__(object_list, per_page, orphans=0, allow_empty_first_page=allow_empty_first_page)
        self.requested_page = page_number

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        offset = (self.requested_page - 1) * self.per_page
        probe = self.object_list[offset : offset + self.per_page + 1]
        return offset + len(probe.values_list("pk", flat=True))

    @property
    def has_next_page(self) -> bool:
        return self.count > self.requested_page * self.per_page


# --- Dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardRow:
    sync: Sync
    last_run: str
    next_run: str
    warning: str


def _dashboard_warning(sync: Sync) -> str:
    status = getattr(sync, "last_run_status", None)
    if getattr(sync, "awaiting_run_id", None) is not None:
        removes = getattr(sync, "awaiting_planned_removes", 0) or 0
        return f"Waiting for approval to remove {removes:,} users."
    if status == RunStatus.FAILED:
        return "Last run failed."
    if status == RunStatus.PARTIAL:
        return "Last run partially failed: some users were not written."
    overdue = sync_overdue_by(sync)
    if overdue is not None:
        return (
            f"Scheduled sync not running: due {timesince(timezone.now() - overdue, depth=1)} "
            "ago. Check that the task cluster (manage.py qcluster) is up."
        )
    if sync.mode == Sync.Mode.DYNAMIC and sync.enabled and getattr(sync, "next_run_at", None) is None:
        return "Enabled but not scheduled: save the sync to schedule it."
    return ""


def dashboard_rows(limit: int = DASHBOARD_LIMIT) -> tuple[list[DashboardRow], int]:
    """The syncs for the admin index, those needing attention first, in one query."""
    attention_first = Case(
        When(awaiting_run_id__isnull=False, then=Value(0)),
        When(last_run_status__in=ATTENTION_STATUSES, then=Value(0)),
        default=Value(1),
    )
    syncs = list(syncs_for_listing().order_by(attention_first, "name")[: limit + 1])
    more = max(0, len(syncs) - limit)
    rows = [
        DashboardRow(
            sync=sync,
            last_run=last_run_link(sync),
            next_run=next_run_display(sync),
            warning=_dashboard_warning(sync),
        )
        for sync in syncs[:limit]
    ]
    rows.sort(key=lambda row: (not row.warning,))
    return rows, more
