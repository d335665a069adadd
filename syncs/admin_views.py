"""What the sync admin shows and the custom admin views it serves.

Admin classes in syncs/admin.py stay declarative and delegate here; everything that changes
state goes through syncs.services.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import (
    Case,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from cohorts.models import Cohort
from destinations.models import Destination
from syncs import services
from syncs.forms import ExportCohortsForm
from syncs.models import (
    ACTIVE_RUN_STATUSES,
    RunStatus,
    Sync,
    SyncFailure,
    SyncRun,
)
from syncs.selectors import sync_acknowledged_member_count, sync_schedules_next_run

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

FAILURES_PAGE_SIZE = 50
DASHBOARD_LIMIT = 50
TARGET_FIELDS_CACHE_SECONDS = 300
RUN_PAGE_REFRESH_SECONDS = 5
# Failure codes offered in the filter: read from the newest rows only, never the whole table.
RECENT_CODES_WINDOW = 5000
PLAN_SAMPLE_SHOWN = 50
# Values a spreadsheet would evaluate as a formula when the CSV is opened.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

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
    last_run = SyncRun.objects.filter(sync=OuterRef("pk")).order_by("-created_at", "-id")
    return (
        queryset.select_related("cohort", "destination")
        .defer("destination__client_secret")
        .annotate(
            last_run_id=Subquery(last_run.values("pk")[:1]),
            last_run_status=Subquery(last_run.values("status")[:1]),
            last_run_at=Subquery(last_run.values("created_at")[:1]),
            last_run_finished_at=Subquery(last_run.values("finished_at")[:1]),
            last_run_planned_removes=Subquery(last_run.values("planned_removes")[:1]),
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


# --- Sync actions ------------------------------------------------------------------------


def _run_kind(*, dry_run: bool, full_resync: bool) -> str:
    if dry_run:
        return "Dry run"
    return "Full resync" if full_resync else "Export"


def _request(request: HttpRequest, sync: Sync, *, dry_run: bool, full_resync: bool) -> SyncRun:
    return services.sync_run_request(
        sync=sync,
        trigger=SyncRun.Trigger.MANUAL,
        requested_by=request.user,
        dry_run=dry_run,
        full_resync=full_resync,
    )


def run_request_one(model_admin: admin.ModelAdmin, request: HttpRequest, sync: Sync, *,
                    dry_run: bool, full_resync: bool = False) -> SyncRun | None:
    try:
        run = _request(request, sync, dry_run=dry_run, full_resync=full_resync)
    except services.SyncRunConflict as conflict:
        model_admin.message_user(request, f"Not queued: {conflict}", messages.WARNING)
        return None
    kind = _run_kind(dry_run=dry_run, full_resync=full_resync)
    model_admin.message_user(request, f"{kind} of {sync.name} requested (run #{run.pk}).", messages.SUCCESS)
    return run


def runs_request(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Sync], *,
                 dry_run: bool, full_resync: bool) -> None:
    requested: list[str] = []
    for sync in queryset.select_related("destination", "cohort"):
        try:
            run = _request(request, sync, dry_run=dry_run, full_resync=full_resync)
        except services.SyncRunConflict as conflict:
            model_admin.message_user(request, f"Not queued: {conflict}", messages.WARNING)
        else:
            requested.append(f"{sync.name} (run #{run.pk})")
    if requested:
        kind = _run_kind(dry_run=dry_run, full_resync=full_resync)
        model_admin.message_user(
            request, f"{kind} requested for {_count(requested, 'sync')}: {', '.join(requested)}.",
            messages.SUCCESS,
        )


def syncs_set_enabled(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Sync], *,
                      enabled: bool) -> None:
    changed: list[str] = []
    one_time: list[str] = []
    for sync in queryset:
        if sync.mode != Sync.Mode.DYNAMIC:
            one_time.append(sync.name)
            continue
        services.sync_set_enabled(sync=sync, enabled=enabled)
        changed.append(sync.name)
    if changed:
        what = "enabled: it runs on its schedule again" if enabled else "disabled: no more scheduled runs"
        model_admin.message_user(
            request, f"Dynamic sync {what} ({_count(changed, 'sync')}: {', '.join(changed)}).",
            messages.SUCCESS,
        )
    if one_time:
        model_admin.message_user(
            request,
            f"{', '.join(one_time)}: one-time exports have no schedule. Change the mode to "
            "“Dynamic sync” to keep the field up to date.",
            messages.WARNING,
        )


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")


# --- Target field suggestions ------------------------------------------------------------


def target_fields_json(request: HttpRequest) -> HttpResponse:
    """The destination's fields for the target field's datalist; never an error page.

    Called by the form's script after the page has loaded, so a slow or unreachable
    destination delays only the suggestions, not the form.
    """
    from destinations.services import destination_target_fields

    try:
        destination = Destination.objects.get(pk=int(request.GET.get("destination", "")))
    except (ValueError, Destination.DoesNotExist):
        return JsonResponse({"ok": False, "fields": [], "message": "Choose a destination first."})
    key = f"syncs:target-fields:{destination.pk}:{destination.updated_at.timestamp()}"
    fields = cache.get(key)
    if fields is None:
        fields = [
            {"name": f.name, "label": f.label, "type": f.type, "compatible": f.is_target_compatible}
            for f in destination_target_fields(destination=destination)
        ]
        if fields:
            cache.set(key, fields, TARGET_FIELDS_CACHE_SECONDS)
    if not fields:
        return JsonResponse(
            {
                "ok": False,
                "fields": [],
                "message": f"Could not read the fields of {destination.name} right now; type the "
                "field name. “Test connection” on the destination says why.",
            }
        )
    fields.sort(key=lambda f: (not f["compatible"], f["name"].lower()))
    return JsonResponse({"ok": True, "fields": fields, "message": ""})


# --- "Export to…" ------------------------------------------------------------------------


def _cohort_ids(raw: str) -> list[int]:
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit():
            ids.append(int(part))
    return ids


def syncs_create_for_cohorts(*, cohorts: Iterable[Cohort], destination: Destination, mode: str,
                             identity_property: str, target_fields: dict[int, str],
                             created_by: AbstractBaseUser | None) -> list[Sync]:
    """One sync per cohort into `destination`, each with a first run requested.

    Runs and schedules are enqueued after the surrounding transaction commits.
    """
    created: list[Sync] = []
    with transaction.atomic():
        for cohort in cohorts:
            sync = Sync.objects.create(
                name=f"{cohort.name} → {destination.name}",
                cohort=cohort,
                destination=destination,
                target_field=target_fields[cohort.pk],
                identity_property=identity_property,
                mode=mode,
                created_by=created_by,
            )
            transaction.on_commit(partial(services.sync_schedule_update, sync=sync))
            services.sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL, requested_by=created_by)
            created.append(sync)
    return created


def export_cohorts(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    raw_ids = request.POST.get("cohorts") if request.method == "POST" else request.GET.get("cohorts")
    ids = _cohort_ids(raw_ids or "")
    cohorts = list(Cohort.objects.filter(pk__in=ids).order_by("name"))
    if not cohorts:
        model_admin.message_user(
            request, "Choose one or more cohorts to export first (Cohorts > select > “Export to…”).",
            messages.WARNING,
        )
        return HttpResponseRedirect(_cohort_changelist_url())

    initial = {"destination": request.GET.get("destination")} if request.method == "GET" else None
    form = ExportCohortsForm(
        request.POST if request.method == "POST" else None, cohorts=cohorts, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        destination = form.cleaned_data["destination"]
        try:
            created = syncs_create_for_cohorts(
                cohorts=cohorts,
                destination=destination,
                mode=form.cleaned_data["mode"],
                identity_property=form.cleaned_data["identity_property"],
                target_fields=form.target_fields(),
                created_by=request.user,
            )
        except IntegrityError:
            # Someone else took a name or field between validation and saving.
            form.add_error(
                None,
                "Another sync with one of these names or fields was saved meanwhile. Check the "
                "fields below and try again.",
            )
        else:
            model_admin.message_user(
                request,
                f"Created {_count(created, 'sync')} to {destination.name} and requested a first "
                f"export: {', '.join(s.name for s in created)}.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:syncs_sync_changelist"))

    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export cohorts to a destination",
        "subtitle": None,
        "opts": model_admin.opts,
        "form": form,
        "cohort_ids": ",".join(str(c.pk) for c in cohorts),
        "target_fields_url": reverse("admin:syncs_sync_target_fields"),
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/syncs/sync/export_cohorts.html", context)


def _cohort_changelist_url() -> str:
    try:
        return reverse("admin:cohorts_cohort_changelist")
    except NoReverseMatch:
        return reverse("admin:syncs_sync_changelist")


# --- Run actions -------------------------------------------------------------------------


def runs_retry_failed(model_admin: admin.ModelAdmin, request: HttpRequest,
                      queryset: QuerySet[SyncRun]) -> SyncRun | None:
    """Re-send the failed users of each run; returns the last retry run created."""
    last: SyncRun | None = None
    for run in queryset.select_related("sync"):
        try:
            retry = services.sync_run_retry_failed(run=run, requested_by=request.user)
        except (services.SyncRunConflict, services.SyncRunStateError) as exc:
            model_admin.message_user(request, f"Run #{run.pk} not retried: {exc}", messages.WARNING)
            continue
        last = retry
        model_admin.message_user(
            request,
            f"Retry of the failed users of run #{run.pk} ({run.sync.name}) requested: run "
            f"#{retry.pk}.",
            messages.SUCCESS,
        )
    return last


def runs_cancel(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
    for run in queryset.select_related("sync"):
        try:
            run = services.sync_run_cancel(run=run, requested_by=request.user)
        except services.SyncRunStateError as exc:
            model_admin.message_user(request, str(exc), messages.WARNING)
            continue
        if run.status == RunStatus.CANCELLED:
            note = "cancelled before anything was sent"
        else:
            note = "asked to stop: it stops after the batches in flight, recording what they did"
        model_admin.message_user(request, f"Run #{run.pk} of {run.sync.name} {note}.", messages.SUCCESS)


def runs_approve(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[SyncRun], *,
                 single: bool = False) -> HttpResponse | None:
    """Approve guarded runs after a confirmation page showing what they would remove."""
    runs = list(queryset.select_related("sync", "sync__destination"))
    waiting = [run for run in runs if run.status == RunStatus.AWAITING_APPROVAL]
    for run in runs:
        if run.status != RunStatus.AWAITING_APPROVAL:
            model_admin.message_user(
                request, f"Run #{run.pk} is {run.get_status_display().lower()}, not awaiting "
                "approval: nothing to approve.",
                messages.WARNING,
            )
    if not waiting:
        return None
    if request.method == "POST" and request.POST.get("post") == "yes":
        for run in waiting:
            try:
                services.sync_run_approve(run=run, approved_by=request.user)
            except (services.SyncRunConflict, services.SyncRunStateError) as exc:
                model_admin.message_user(request, f"Run #{run.pk} not approved: {exc}", messages.WARNING)
                continue
            model_admin.message_user(
                request,
                f"Run #{run.pk} of {run.sync.name} approved by {request.user}: it runs again and "
                f"sends its {run.planned_removes:,} removals and {run.planned_adds:,} additions.",
                messages.SUCCESS,
            )
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Approve guarded runs?" if not single else f"Approve run #{waiting[0].pk}?",
        "subtitle": None,
        "opts": model_admin.opts,
        "runs": [(run, plan_sample_rows(run)) for run in waiting],
        "single": single,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/syncs/syncrun/approve_confirmation.html", context)


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
        "can_cancel": run.status in (*ACTIVE_RUN_STATUSES, RunStatus.AWAITING_APPROVAL),
        "can_approve": run.status == RunStatus.AWAITING_APPROVAL,
        "can_retry": run.status not in ACTIVE_RUN_STATUSES
        and run.failed_adds + run.failed_removes > 0,
    }


# --- Failures: CSV and the large-table changelist ----------------------------------------


class _Echo:
    """A file-like object whose write() hands the CSV line back to the generator."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return f"'{value}"
    return value


FAILURE_CSV_COLUMNS = (
    "distinct_id",
    "identity_value",
    "operation",
    "code",
    "message",
    "retriable",
    "created_at",
)


def failures_csv(run: SyncRun) -> StreamingHttpResponse:
    """Every failure of the run, streamed: memory stays flat whatever the run's size."""
    rows = (
        SyncFailure.objects.filter(run=run).order_by("id").values_list(*FAILURE_CSV_COLUMNS)
    )

    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(["run", *FAILURE_CSV_COLUMNS])
        for row in rows.iterator(chunk_size=2000):
            cells = [_csv_cell(value) for value in row]
            cells[-1] = row[-1].isoformat()
            yield writer.writerow([run.pk, *cells])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}-failures.csv"'
    return response


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
    if status == RunStatus.FAILED:
        return "Last run failed."
    if status == RunStatus.PARTIAL:
        return "Last run partially failed: some users were not written."
    if status == RunStatus.AWAITING_APPROVAL:
        removes = getattr(sync, "last_run_planned_removes", 0) or 0
        return f"Waiting for approval to remove {removes:,} users."
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
        When(last_run_status__in=ATTENTION_STATUSES, then=Value(0)), default=Value(1)
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


def format_list(items: Iterable[str]) -> str:
    return format_html_join(", ", "{}", ((item,) for item in items))


__all__ = ["Http404"]
