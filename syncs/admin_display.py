"""What the sync admin shows: badges, timings, listing annotations, plan samples, pages
of failures that are never counted, and the dashboard rows. Read-only: nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from cohortsync_site.admin_paging import page_number
from syncs.admin_charts import (
    changes_chart,
    chart_legend,
    members_chart,
    members_sparkline,
    run_markers,
)
from syncs.models import ACTIVE_RUN_STATUSES, RunStatus, Sync, SyncFailure, SyncRun
from syncs.selectors import (
    RECENT_RUNS,
    run_call_forecast,
    run_failures,
    run_plan_is_recorded,
    run_progress,
    run_retry_failures,
    sync_acknowledged_member_page_count,
    sync_schedules_next_run,
    syncs_recent_runs,
)

FAILURES_PAGE_SIZE = 50
DASHBOARD_LIMIT = 50
# The run page polls its progress this often while the run is queued or running.
RUN_PROGRESS_POLL_SECONDS = 2
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


# Labels short enough for a list column; the full label is the badge's title.
SHORT_STATUS_LABELS = {RunStatus.SKIPPED: "Skipped"}


def status_badge(run: SyncRun | None = None, *, status: str = "", dry_run: bool | None = None) -> str:
    """The status as a coloured badge; a dry run says so next to it (it sent nothing)."""
    status = run.status if run is not None else status
    dry_run = run.is_dry_run if run is not None and dry_run is None else bool(dry_run)
    try:
        label = RunStatus(status).label
    except ValueError:
        label = status
    foreground, background = STATUS_STYLE.get(status, ("#4a5568", "#edf2f7"))
    badge = format_html(
        '<span class="run-status run-status-{}" title="{}" style="color:{};background:{};padding:1px 7px;'
        'border-radius:9px;white-space:nowrap;font-weight:600">{}</span>',
        status,
        label,
        foreground,
        background,
        SHORT_STATUS_LABELS.get(status, label),
    )
    if dry_run:
        return format_html('{} <span class="run-dry" title="{}">dry run</span>', badge,
                           "A dry run only plans: nothing was sent.")
    return badge


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


def _when(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    now = timezone.now()
    if abs((now - moment).total_seconds()) < 60:
        return "just now" if moment <= now else "in under a minute"
    if moment <= now:
        return f"{timesince(moment, now, depth=1)} ago"
    return f"in {timesince(now, moment, depth=1)}"


def interval_words(minutes: int) -> str:
    """"every 15 minutes", "every 2 hours", "every day"."""
    for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            count = minutes // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {minutes} minutes"


def schedule_words(sync: Sync) -> str:
    """The schedule as a person says it: "Every 15 minutes", "One-time export"."""
    if sync.mode != Sync.Mode.DYNAMIC:
        return "One-time export: no schedule"
    every = interval_words(sync.effective_interval_minutes)
    if not sync.enabled:
        return f"Disabled (was {every})"
    return every[0].upper() + every[1:]


def run_id_searched(search: str) -> int | None:
    """The run id a search is, when it is one: "1234" or "#1234"."""
    text = search.strip().removeprefix("#").strip()
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    return None


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
            last_run_is_dry=Subquery(last_run.values("is_dry_run")[:1]),
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
    badge = status_badge(status=sync.last_run_status, dry_run=getattr(sync, "last_run_is_dry", False))  # type: ignore[attr-defined]
    if not with_counts:
        return format_html('<a href="{}">{}</a> {}', url, badge, _when(moment))
    return format_html('<a href="{}">Run #{}</a> {} {}', url, run_id, badge, _when(moment))


def next_run_display(sync: Sync) -> str:
    """The schedule and the next run in words: "Every 15 minutes · next in 4 minutes". A
    schedule just created is due at once, so it says "due now", never "0 minutes ago"."""
    schedule = schedule_words(sync)
    if sync.mode != Sync.Mode.DYNAMIC or not sync.enabled:
        return format_html('<span class="sync-schedule">{}</span>', schedule)
    next_run = getattr(sync, "next_run_at", None)
    if next_run is None:
        when = format_html("{}", "not scheduled")
    elif sync_overdue_by(sync) is not None:
        when = format_html(
            '<span class="sync-overdue" style="color:#9b1c1c" title="The task cluster may not be '
            'running">overdue since {}</span>',
            _when(next_run),
        )
    elif next_run <= timezone.now():
        when = format_html("{}", "due now")
    else:
        when = format_html("next {}", _when(next_run))
    return format_html('<span class="sync-schedule">{}</span> · <span class="sync-next-run">{}</span>',
                       schedule, when)


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
    # One sync, counted through the (sync, is_member) index; estimated beyond millions.
    count = sync_acknowledged_member_page_count(sync)
    return f"{str(count).capitalize()} members acknowledged by the destination"


def frozen_note(sync: Sync, *, can_create: bool = True) -> str:
    why = (
        "The destination, target field and identity property can no longer be changed: the "
        "destination has acknowledged users of this sync, and they were written under the "
        "current field and identity. Changing them would orphan those users (their old field "
        "would never be cleared)."
    )
    if not can_create:
        return why
    new_url = reverse("admin:syncs_sync_add") + "?" + urlencode(
        {
            "cohort": sync.cohort_id,
            "destination": sync.destination_id,
            "identity_property": sync.identity_property,
        }
    )
    return format_html('{} <a href="{}">Create a new sync instead</a>.', why, new_url)


# --- Sync page: run history -------------------------------------------------------------

# The sync page's charts go further back than the dashboard's strip of markers.
SYNC_PAGE_CHART_RUNS = 100


def sync_history(sync: Sync) -> dict[str, Any]:
    """The sync page's history: the last runs as markers, acknowledged members after each
    run and the users each run added, removed and failed (two queries)."""
    points = syncs_recent_runs(sync_ids=[sync.pk], limit=SYNC_PAGE_CHART_RUNS).get(sync.pk, [])
    recent = points[-RECENT_RUNS:]
    return {
        "markers": run_markers(recent),
        "shown": len(recent),
        "members_chart": members_chart(points),
        "changes_chart": changes_chart(points),
        "legend": chart_legend(),
        "runs_url": reverse("admin:syncs_syncrun_changelist") + f"?sync__id__exact={sync.pk}",
    }


# --- Run detail page ---------------------------------------------------------------------


@dataclass(frozen=True)
class CountsRow:
    key: str  # "adds" or "removes": the run's counters are planned_<key>, ...
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


REJECTED_OPERATIONS = (SyncFailure.Operation.ADD, SyncFailure.Operation.REMOVE)
# Rejections read at most to find a run's skipped users when its counter says it has none
# (runs from before the counter was kept on failed validations).
SKIPS_UNCOUNTED_SCAN = 10_000


def run_failures_page(
    run: SyncRun, *, query: str, page: int, skipped: bool = False
) -> tuple[list[SyncFailure], bool]:
    """One page of a run's users rejected by the destination (or, with `skipped`, skipped
    before sending) and whether another page follows: LIMIT+1, never COUNT(*)."""
    operations = (SyncFailure.Operation.SKIP,) if skipped else REJECTED_OPERATIONS
    failures = run_failures(run).filter(operation__in=operations)
    query = query.strip()
    if query:
        failures = failures.filter(
            Q(identity_value=query) | Q(distinct_id=query) | Q(code=query)
        )
    offset = (page - 1) * FAILURES_PAGE_SIZE
    rows = list(failures[offset : offset + FAILURES_PAGE_SIZE + 1])
    return rows[:FAILURES_PAGE_SIZE], len(rows) > FAILURES_PAGE_SIZE


@dataclass(frozen=True)
class FailureGroup:
    """Rejected or skipped users of a run: a counted, paged, searchable table."""

    key: str
    title: str
    count: int
    # When not every user of the group has a row (skips are capped per run).
    note: str
    rows: list[SyncFailure]
    page: int
    previous_url: str
    next_url: str
    empty_text: str


def _failure_groups(request: HttpRequest, run: SyncRun, query: str) -> list[FailureGroup]:
    """Users the destination rejected first (what needs fixing), then users skipped before
    sending (no or invalid identity), each with its own count and pages."""
    base = reverse("admin:syncs_syncrun_change", args=[run.pk])
    pages = {"page": page_number(request.GET.get("page")),
             "skipped_page": page_number(request.GET.get("skipped_page"))}

    def url(param: str, number: int) -> str:
        params = {**({"q": query} if query else {}), **pages, param: number}
        return f"{base}?{urlencode({k: v for k, v in params.items() if v != 1 or k == 'q'})}#failures"

    recorded = (run.plan_sample or {}).get("skipped_recorded") if isinstance(run.plan_sample, dict) else None
    skip_note = ""
    if isinstance(recorded, int) and recorded < run.skipped_users:
        skip_note = f"The first {recorded:,} are listed: skipped users get a row each up to a limit per run."
    # A run whose counter says it skipped nobody is not searched for skipped rows when it
    # has many rejections: those would all be read to find none.
    look_for_skips = run.skipped_users > 0 or run.failed_adds + run.failed_removes <= SKIPS_UNCOUNTED_SCAN
    groups = []
    for key, param, title, count, skipped, empty in (
        ("rejected", "page", "Rejected by the destination", run.failed_adds + run.failed_removes, False,
         "No user was rejected."),
        ("skipped", "skipped_page", "Skipped before sending (no or invalid identity)", run.skipped_users, True,
         "No user was skipped."),
    ):
        page = pages[param]
        rows, has_next = [], False
        if look_for_skips or not skipped:
            rows, has_next = run_failures_page(run, query=query, page=page, skipped=skipped)
        groups.append(FailureGroup(
            key=key, title=title, count=count, note=skip_note if skipped else "", rows=rows, page=page,
            previous_url=url(param, page - 1) if page > 1 else "",
            next_url=url(param, page + 1) if has_next else "",
            empty_text=f"No {'skipped user' if skipped else 'rejection'} matches “{query}”." if query else empty,
        ))
    return groups


def run_progress_payload(run: SyncRun) -> dict[str, Any]:
    """What the run page's progress bar shows, as JSON: counters and timings only, never an
    identity, so it can be polled while the run works."""
    progress = run_progress(run)
    if progress.planned:
        summary = (
            f"{progress.attempted:,} of {progress.planned:,} planned users attempted "
            f"({progress.fraction:.0%})"
        )
    elif progress.is_live:
        summary = "Planning: counting the users to add and remove…"
    else:
        summary = "Nothing to send: no user was planned."
    if run.is_dry_run and not progress.is_live:
        summary = f"Dry run: {progress.planned:,} users planned, nothing sent."
    return {
        "run": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "status_html": str(status_badge(run)),
        "is_live": progress.is_live,
        "is_dry_run": run.is_dry_run,
        "planned": progress.planned,
        "attempted": progress.attempted,
        "succeeded": progress.succeeded,
        "failed": progress.failed,
        "skipped": progress.skipped,
        "api_calls": progress.api_calls,
        "percent": round(progress.fraction * 100, 1),
        "rate_per_second": None if progress.rate_per_second is None else round(progress.rate_per_second, 1),
        "eta_seconds": None if progress.eta_seconds is None else round(progress.eta_seconds),
        "summary": summary,
        "rate_text": "" if progress.rate_per_second is None else f"{progress.rate_per_second:,.0f} users/s",
        "eta_text": "" if progress.eta_seconds is None else f"about {_seconds_display(progress.eta_seconds)} left",
        "duration": run_duration_display(run),
        "counts": {
            name: getattr(run, name)
            for name in ("planned_adds", "attempted_adds", "succeeded_adds", "failed_adds", "planned_removes",
                         "attempted_removes", "succeeded_removes", "failed_removes", "skipped_users", "api_calls")
        },
    }


def run_detail_context(request: HttpRequest, run: SyncRun) -> dict[str, Any]:
    query = request.GET.get("q", "").strip()
    is_live = run.status in ACTIVE_RUN_STATUSES
    return {
        "run": run,
        "run_badge": status_badge(run),
        "run_duration": run_duration_display(run),
        "counts": [
            CountsRow("adds", "Add (set member)", run.planned_adds, run.attempted_adds,
                      run.succeeded_adds, run.failed_adds),
            CountsRow("removes", "Remove (set not member)", run.planned_removes, run.attempted_removes,
                      run.succeeded_removes, run.failed_removes),
        ],
        "progress": run_progress_payload(run),
        "progress_url": reverse("admin:syncs_syncrun_progress", args=[run.pk]),
        "progress_poll_seconds": RUN_PROGRESS_POLL_SECONDS,
        "plan": plan_sample_rows(run),
        "forecast": run_call_forecast(run),
        "plan_csv_url": reverse("admin:syncs_syncrun_plan_csv", args=[run.pk]),
        "plan_recorded": run_plan_is_recorded(run),
        "failure_groups": _failure_groups(request, run, query),
        "failures_query": query,
        "failures_recorded": run.failed_adds + run.failed_removes + run.skipped_users,
        "failures_csv_url": reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]),
        "failures_changelist_url": reverse("admin:syncs_syncfailure_changelist")
        + f"?run__id__exact={run.pk}",
        "is_live": is_live,
        # A run awaiting approval is rejected instead (recorded as such).
        "can_cancel": run.status in ACTIVE_RUN_STATUSES,
        "can_approve": run.status == RunStatus.AWAITING_APPROVAL,
        **_retry_buttons(run),
    }


def _retry_buttons(run: SyncRun) -> dict[str, bool]:
    """Which retry buttons the run page offers: retriable failures (the default retry),
    and failures refused for good (the retry that includes them)."""
    if run.status in ACTIVE_RUN_STATUSES or run.failed_adds + run.failed_removes == 0:
        return {"can_retry": False, "can_retry_all": False}
    retriable = run_retry_failures(run.pk, non_retriable=False).exists()
    permanent = run_retry_failures(run.pk, non_retriable=True).filter(retriable=False).exists()
    return {"can_retry": retriable, "can_retry_all": permanent}


# --- The failure changelist ------------------------------------------------------------


def recent_failure_codes() -> list[str]:
    recent = SyncFailure.objects.order_by("-id").values_list("code", flat=True)[:RECENT_CODES_WINDOW]
    return sorted(set(recent))


# --- Dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardRow:
    sync: Sync
    last_run: str
    next_run: str
    warning: str
    # The last runs as coloured markers, and the acknowledged members after each.
    history: str = ""
    members_trend: str = ""


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
    syncs = syncs[:limit]
    history = syncs_recent_runs(sync_ids=[sync.pk for sync in syncs])
    rows = [
        DashboardRow(
            sync=sync,
            last_run=last_run_link(sync),
            next_run=next_run_display(sync),
            warning=_dashboard_warning(sync),
            history=run_markers(history.get(sync.pk, [])),
            members_trend=members_sparkline(history.get(sync.pk, [])),
        )
        for sync in syncs
    ]
    rows.sort(key=lambda row: (not row.warning,))
    return rows, more
