"""Custom sync admin views and the action helpers behind them.

Admin classes in syncs/admin.py stay declarative and delegate here; everything that changes
state goes through syncs.services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from cohorts.models import Cohort
from cohorts.rules import DISTINCT_ID_PROPERTY, RuleError
from cohorts.selectors import cohort_members, members_property_coverage
from cohortsync_site.csv_download import csv_download
from cohortsync_site.database import QueryTooSlow, statement_time_limit
from cohortsync_site.text import count_of
from destinations.base import TargetStatus
from destinations.models import Destination
from destinations.services import destination_target_fields
from syncs import services
from syncs.admin_display import plan_sample_rows, run_progress_payload
from syncs.admin_sync_form import sync_form_config, target_check_message
from syncs.forms import ExportCohortsForm
from syncs.models import DISTINCT_ID_IDENTITIES, RunStatus, Sync, SyncRun
from syncs.selectors import run_call_forecast, run_failures, run_planned_users

TARGET_FIELDS_CACHE_SECONDS = 300
COVERAGE_TIME_LIMIT_SECONDS = 10


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
    return count_of(len(items), noun)


# --- Target field suggestions ------------------------------------------------------------


def target_fields_json(request: HttpRequest) -> HttpResponse:
    """The destination's fields for the target field's datalist; never an error page.

    Called by the form's script after the page has loaded, so a slow or unreachable
    destination delays only the suggestions, not the form.
    """
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


# --- Identity coverage ------------------------------------------------------------------


def identity_coverage_json(request: HttpRequest) -> JsonResponse:
    """How many of a cohort's members have the identity property: "612 of 620 members have
    `$email`". Two counts over the cohort, each held to COVERAGE_TIME_LIMIT_SECONDS; the
    form's script asks once the cohort and property have settled."""
    try:
        cohort = Cohort.objects.get(pk=int(request.GET.get("cohort", "")))
    except (ValueError, Cohort.DoesNotExist):
        return JsonResponse({"ok": False, "message": "Choose a cohort to see how many members have it."})
    identity = (request.GET.get("property") or "").strip()
    if not identity:
        return JsonResponse({"ok": False, "message": "Enter the identity property."})
    prop = DISTINCT_ID_PROPERTY if identity in DISTINCT_ID_IDENTITIES else identity
    try:
        with statement_time_limit(COVERAGE_TIME_LIMIT_SECONDS):
            coverage = members_property_coverage(cohort_members(cohort), prop)
    except RuleError as exc:
        return JsonResponse({"ok": False, "message": f"Cannot count: {exc}"})
    except QueryTooSlow:
        return JsonResponse({"ok": False, "message": "Counting the members took too long; the "
                             "run page will say how many were skipped."})
    missing = coverage.members - coverage.with_property
    text = f"{coverage.with_property:,} of {count_of(coverage.members, 'member')} have {identity}"
    if coverage.members and missing:
        text += f"; {missing:,} without it would be skipped."
    elif coverage.members:
        text += "."
    else:
        text = f"{cohort.name} has no members right now."
    return JsonResponse(
        {
            "ok": True,
            "members": coverage.members,
            "with_property": coverage.with_property,
            "message": text,
            "warning": bool(coverage.members and not coverage.with_property),
        }
    )


# --- "Export to…" ------------------------------------------------------------------------


def _cohort_ids(raw: str) -> list[int]:
    ids = []
    for part in raw.split(","):
        part = part.strip()
        if part.isdigit():
            ids.append(int(part))
    return ids


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
            created = services.syncs_create_for_cohorts(
                cohorts=cohorts,
                destination=destination,
                mode=form.cleaned_data["mode"],
                identity_property=form.cleaned_data["identity_property"],
                target_fields=form.target_fields(),
                created_by=request.user,
            )
        except ValidationError as exc:
            # Someone else took a field between validation and saving.
            form.add_error(None, list(exc.messages))
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
            for check in form.target_checks.values():
                if check.status != TargetStatus.EXISTS:
                    model_admin.message_user(request, *target_check_message(check))
            return HttpResponseRedirect(reverse("admin:syncs_sync_changelist"))

    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Export cohorts to a destination",
        "subtitle": None,
        "opts": model_admin.opts,
        "form": form,
        "cohort_ids": ",".join(str(c.pk) for c in cohorts),
        "sync_form_config": sync_form_config(None),
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
                      queryset: QuerySet[SyncRun], *, non_retriable: bool = False) -> SyncRun | None:
    """Re-send the failed users of each run (only the retriable ones unless
    `non_retriable`); returns the last retry run created."""
    last: SyncRun | None = None
    which = "failed users" if non_retriable else "retriable failed users"
    for run in queryset.select_related("sync"):
        try:
            retry = services.sync_run_retry_failed(
                run=run, requested_by=request.user, non_retriable=non_retriable
            )
        except (services.SyncRunConflict, services.SyncRunStateError) as exc:
            model_admin.message_user(request, f"Run #{run.pk} not retried: {exc}", messages.WARNING)
            continue
        last = retry
        model_admin.message_user(
            request,
            f"Retry of the {which} of run #{run.pk} ({run.sync.name}) requested: run #{retry.pk}.",
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


def runs_reject(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
    for run in queryset.select_related("sync"):
        try:
            run = services.sync_run_reject(run=run, rejected_by=request.user)
        except services.SyncRunStateError as exc:
            model_admin.message_user(request, str(exc), messages.WARNING)
            continue
        model_admin.message_user(
            request,
            f"Run #{run.pk} of {run.sync.name} rejected by {request.user}: its removals were not "
            "sent. The next run plans again.",
            messages.SUCCESS,
        )


def runs_approve(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[SyncRun], *,
                 single: bool = False) -> HttpResponse | None:
    """Approve guarded runs after a confirmation page showing what they would remove."""
    runs = list(
        queryset.select_related("sync", "sync__destination").defer("sync__destination__client_secret")
    )
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
        "runs": [(run, plan_sample_rows(run), run_call_forecast(run)) for run in waiting],
        "single": single,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/syncs/syncrun/approve_confirmation.html", context)


# --- Failures CSV ----------------------------------------


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
    rows = run_failures(run).values_list(*FAILURE_CSV_COLUMNS)
    return csv_download(
        filename=f"run-{run.pk}-failures.csv",
        header=["run", *FAILURE_CSV_COLUMNS],
        rows=([run.pk, *row[:-1], row[-1].isoformat()] for row in rows.iterator(chunk_size=2000)),
    )


# --- A run's plan and progress -------------------------------------------------------------

PLAN_CSV_COLUMNS = ("run", "operation", "identity", "distinct_id")


def run_plan_csv(run: SyncRun) -> StreamingHttpResponse:
    """Every user the run planned to add or remove, each once, dry runs alike; streamed
    from the packed plan one chunk at a time, so memory stays flat at a million users."""
    kind = "dry-run-plan" if run.is_dry_run else "plan"
    return csv_download(
        filename=f"run-{run.pk}-{kind}.csv",
        header=PLAN_CSV_COLUMNS,
        rows=((run.pk, user.operation, user.identity, user.distinct_id) for user in run_planned_users(run)),
    )


def run_progress_json(run: SyncRun) -> JsonResponse:
    # Never cached: admin_view adds Cache-Control: no-store.
    return JsonResponse(run_progress_payload(run))
