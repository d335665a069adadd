"""Sync, run and failure admin. Declarative: every decision is a service or selector call."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from cohortsync_site.admin_paging import LargeTablePaginator, large_table_paginator
from cohortsync_site.admin_site import admin_object_or_404
from destinations.models import Destination
from syncs import (
    admin_display,
    admin_lists,
    admin_schedules,  # noqa: F401  (django-q2's schedules, in words)
    admin_sync_form,
    admin_views,
    services,
)
from syncs.admin_display import (
    run_duration_display,
    status_badge,
    syncs_for_listing,
)
from syncs.forms import SyncAdminForm
from syncs.models import FROZEN_SYNC_FIELDS, RunStatus, Sync, SyncFailure, SyncRun
from syncs.selectors import sync_is_frozen

NEVER_RUN = "never"
RUN_SYNC_PERMISSION = "syncs.run_sync"
MANAGE_RUN_PERMISSION = "syncs.manage_run"
APPROVE_RUN_PERMISSION = "syncs.approve_run"


class LastRunStatusFilter(admin.SimpleListFilter):
    title = "last run status"
    parameter_name = "last_run"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*RunStatus.choices, (NEVER_RUN, "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Sync]) -> QuerySet[Sync]:
        value = self.value()
        if value == NEVER_RUN:
            return queryset.filter(last_run_id__isnull=True)
        if value:
            return queryset.filter(last_run_status=value)
        return queryset


class DestinationFilter(admin.SimpleListFilter):
    """Destinations by name, read without their (encrypted) secrets."""

    title = "destination"
    parameter_name = "destination"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Destination.objects.order_by("name").values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Sync]) -> QuerySet[Sync]:
        return queryset.filter(destination_id=self.value()) if self.value() else queryset


class AuditTrailAdmin(admin.ModelAdmin):
    """Run history is the audit trail: viewable, never added, edited or deleted by hand
    (old runs and their failures are pruned by `prune_runs`)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Sync)
class SyncAdmin(admin.ModelAdmin):
    form = SyncAdminForm
    # Sized for 1280 px (see admin_lists): enabled is said by the schedule, cohort and
    # destination share a column.
    list_display = (
        "name",
        "route",
        "target_field_cell",
        "mode_cell",
        "last_run",
        "next_run_due",
    )
    list_filter = (
        ("destination__kind", admin.ChoicesFieldListFilter),
        DestinationFilter,
        "mode",
        "enabled",
        LastRunStatusFilter,
    )
    search_fields = ("name", "cohort__name", "target_field")
    list_select_related = ("cohort", "destination")
    actions = ["export_now", "dry_run", "full_resync", "enable_dynamic_sync", "disable_dynamic_sync"]
    readonly_fields = (
        "last_run_detail",
        "next_run_detail",
        "acknowledged_members",
        "created_by",
        "created_at",
        "updated_at",
    )

    # --- Queryset, form, saving --------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sync]:
        return syncs_for_listing(super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj: Sync | None = None) -> list[tuple[str | None, dict[str, Any]]]:
        target: dict[str, Any] = {
            "fields": ("name", "cohort", "destination", "target_field", "identity_property")
        }
        if obj is not None and self._is_frozen(obj):
            target["description"] = admin_display.frozen_note(
                obj, can_create=self.has_add_permission(request)
            )
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, target),
            ("Schedule", {"fields": ("mode", "interval_minutes", "enabled")}),
            ("Options", {"classes": ("collapse",), "fields": ("options",)}),
        ]
        if obj is not None:
            fieldsets.append(
                (
                    "Status",
                    {
                        "fields": (
                            "last_run_detail",
                            "next_run_detail",
                            "acknowledged_members",
                            "created_by",
                            "created_at",
                            "updated_at",
                        )
                    },
                )
            )
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Sync | None = None) -> tuple[str, ...]:
        readonly = tuple(self.readonly_fields)
        if obj is not None and self._is_frozen(obj):
            # Users already written under the old field or identity would be orphaned.
            readonly += FROZEN_SYNC_FIELDS
        return readonly

    def _is_frozen(self, obj: Sync) -> bool:
        cached = getattr(obj, "_admin_is_frozen", None)
        if cached is None:
            cached = obj._admin_is_frozen = sync_is_frozen(obj)  # type: ignore[attr-defined]
        return cached

    def save_model(self, request: HttpRequest, obj: Sync, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        # After commit, so the schedule never points at a sync that was rolled back.
        transaction.on_commit(partial(services.sync_schedule_update, sync=obj))
        check = getattr(form, "target_check", None)
        if check is not None:
            message, level = admin_sync_form.target_check_message(check)
            self.message_user(request, message, level)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Sync | None = None):  # type: ignore[no-untyped-def]
        context["can_run_sync"] = bool(obj and obj.pk and self.has_run_sync_permission(request, obj))
        context["can_view_runs"] = request.user.has_perm("syncs.view_syncrun")
        context["sync_form_config"] = admin_sync_form.sync_form_config(obj)
        if obj is not None and obj.pk:
            context["run_history"] = admin_display.sync_history(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Columns -----------------------------------------------------------------------

    @admin.display(description="Cohort → destination", ordering="cohort__name")
    def route(self, obj: Sync) -> str:
        return admin_lists.one_line(f"{obj.cohort.name} → {obj.destination.name}")

    @admin.display(description="Target field", ordering="target_field")
    def target_field_cell(self, obj: Sync) -> str:
        return admin_lists.one_line(obj.target_field)

    @admin.display(description="Mode", ordering="mode")
    def mode_cell(self, obj: Sync) -> str:
        return "Dynamic" if obj.mode == Sync.Mode.DYNAMIC else "One-time"

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run(self, obj: Sync) -> str:
        return admin_display.last_run_link(obj)

    @admin.display(description="Next run due", ordering="next_run_at")
    def next_run_due(self, obj: Sync) -> str:
        return admin_display.next_run_display(obj)

    @admin.display(description="Last run")
    def last_run_detail(self, obj: Sync) -> str:
        return admin_display.last_run_link(obj, with_counts=True)

    @admin.display(description="Next run due")
    def next_run_detail(self, obj: Sync) -> str:
        return admin_display.next_run_display(obj)

    @admin.display(description="Acknowledged members")
    def acknowledged_members(self, obj: Sync) -> str:
        return admin_display.acknowledged_members_display(obj)

    # --- Actions -----------------------------------------------------------------------

    def has_run_sync_permission(self, request: HttpRequest, obj: Sync | None = None) -> bool:
        """Export now, dry run, full resync: only on syncs the user can see."""
        return self.has_view_permission(request, obj) and request.user.has_perm(RUN_SYNC_PERMISSION)

    @admin.action(description="Export now", permissions=["run_sync"])
    def export_now(self, request: HttpRequest, queryset: QuerySet[Sync]) -> None:
        admin_views.runs_request(self, request, queryset, dry_run=False, full_resync=False)

    @admin.action(description="Dry run (plan only, nothing is sent)", permissions=["run_sync"])
    def dry_run(self, request: HttpRequest, queryset: QuerySet[Sync]) -> None:
        admin_views.runs_request(self, request, queryset, dry_run=True, full_resync=False)

    @admin.action(description="Full resync (re-send every member)", permissions=["run_sync"])
    def full_resync(self, request: HttpRequest, queryset: QuerySet[Sync]) -> None:
        admin_views.runs_request(self, request, queryset, dry_run=False, full_resync=True)

    # Turning a schedule on or off configures the sync: it takes change_sync.
    @admin.action(description="Enable dynamic sync", permissions=["change"])
    def enable_dynamic_sync(self, request: HttpRequest, queryset: QuerySet[Sync]) -> None:
        admin_views.syncs_set_enabled(self, request, queryset, enabled=True)

    @admin.action(description="Disable dynamic sync", permissions=["change"])
    def disable_dynamic_sync(self, request: HttpRequest, queryset: QuerySet[Sync]) -> None:
        admin_views.syncs_set_enabled(self, request, queryset, enabled=False)

    # --- Custom views ------------------------------------------------------------------

    def get_urls(self):  # type: ignore[no-untyped-def]
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("export-cohorts/", wrap(self.export_cohorts_view), name=f"{prefix}_export_cohorts"),
            path("target-fields/", wrap(self.target_fields_view), name=f"{prefix}_target_fields"),
            path("identity-coverage/", wrap(self.identity_coverage_view), name=f"{prefix}_identity_coverage"),
            path("<path:object_id>/export-now/", wrap(self.export_now_view), name=f"{prefix}_export_now"),
            path("<path:object_id>/dry-run/", wrap(self.dry_run_view), name=f"{prefix}_dry_run"),
            *super().get_urls(),
        ]

    def export_cohorts_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_run_sync_permission(request)):
            raise PermissionDenied
        return admin_views.export_cohorts(self, request)

    def target_fields_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        return admin_views.target_fields_json(request)

    def identity_coverage_view(self, request: HttpRequest) -> HttpResponse:
        # Counts only, no member: for whoever may edit syncs and see cohorts.
        if not (
            (self.has_add_permission(request) or self.has_change_permission(request))
            and request.user.has_perm("cohorts.view_cohort")
        ):
            raise PermissionDenied
        return admin_views.identity_coverage_json(request)

    def export_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._run_view(request, object_id, dry_run=False)

    def dry_run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._run_view(request, object_id, dry_run=True)

    def _run_view(self, request: HttpRequest, object_id: str, *, dry_run: bool) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_run_sync_permission(request):
            raise PermissionDenied
        sync = admin_object_or_404(self, request, object_id)
        if not self.has_run_sync_permission(request, sync):
            raise PermissionDenied
        run = admin_views.run_request_one(self, request, sync, dry_run=dry_run)
        if run is not None:
            return HttpResponseRedirect(reverse("admin:syncs_syncrun_change", args=[run.pk]))
        return HttpResponseRedirect(reverse("admin:syncs_sync_change", args=[sync.pk]))


@admin.register(SyncRun)
class SyncRunAdmin(AuditTrailAdmin):
    # Sized for 1280 px (see admin_lists): the sync's name under the run's number, the
    # trigger under the time it was created.
    list_display = (
        "run",
        "status_badge",
        "created",
        "duration",
        "adds",
        "removes",
        "skipped",
        "api_calls_count",
    )
    list_display_links = ("run",)
    list_filter = ("status", "trigger", "sync", "is_dry_run")
    list_select_related = ("sync", "triggered_by")
    # A number is also a run id (get_search_results); alone, it opens that run.
    search_fields = ("sync__name", "sync__destination__name")
    search_help_text = "A run number, or part of a sync's or destination's name."
    date_hierarchy = "created_at"
    actions = [
        "retry_failed_users",
        "retry_all_failed_users",
        "cancel_run",
        "approve_guarded_run",
        "reject_guarded_run",
    ]
    change_form_template = "admin/syncs/syncrun/change_form.html"
    # Everything is shown by the template; these only keep the readonly form cheap.
    fields = ("sync", "status")
    readonly_fields = ("sync", "status")

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncRun]:
        return (
            super()
            .get_queryset(request)
            .select_related("sync", "sync__cohort", "sync__destination", "triggered_by")
            .defer("sync__destination__client_secret")
        )

    def has_manage_run_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        """Retry and cancel: only runs the user can see."""
        return self.has_view_permission(request, obj) and request.user.has_perm(MANAGE_RUN_PERMISSION)

    def has_approve_run_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        """Approving a mass removal (its page lists the users it removes)."""
        return self.has_view_permission(request, obj) and request.user.has_perm(APPROVE_RUN_PERMISSION)

    @admin.display(description="Run", ordering="id")
    def run(self, obj: SyncRun) -> str:
        return admin_lists.run_cell(obj)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SyncRun) -> str:
        return status_badge(obj)

    @admin.display(description="Created at", ordering="created_at")
    def created(self, obj: SyncRun) -> str:
        return format_html("{}{}", admin_lists.compact_time(obj.created_at), admin_lists.trigger_cell(obj))

    @admin.display(description="Duration")
    def duration(self, obj: SyncRun) -> str:
        return run_duration_display(obj)

    @admin.display(description="Adds")
    def adds(self, obj: SyncRun) -> str:
        return admin_lists.count_cell(obj, operation="adds")

    @admin.display(description="Removes")
    def removes(self, obj: SyncRun) -> str:
        return admin_lists.count_cell(obj, operation="removes")

    @admin.display(description="Skipped", ordering="skipped_users")
    def skipped(self, obj: SyncRun) -> str:
        return admin_lists.number(obj.skipped_users)

    @admin.display(description="API calls", ordering="api_calls")
    def api_calls_count(self, obj: SyncRun) -> str:
        return admin_lists.number(obj.api_calls)

    # --- Search: a run number finds that run -------------------------------------------

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[SyncRun],
                           search_term: str) -> tuple[QuerySet[SyncRun], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        run_id = admin_display.run_id_searched(search_term)
        if run_id is not None:
            results = results | queryset.filter(pk=run_id)
        return results, may_have_duplicates

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        run_id = admin_display.run_id_searched(request.GET.get(SEARCH_VAR, ""))
        if (run_id is not None and request.method == "GET" and IS_POPUP_VAR not in request.GET
                and self.get_queryset(request).filter(pk=run_id).exists()):
            return HttpResponseRedirect(reverse("admin:syncs_syncrun_change", args=[run_id]))
        return super().changelist_view(request, extra_context)

    # --- Actions -----------------------------------------------------------------------

    @admin.action(description="Retry failed users (retriable failures only)", permissions=["manage_run"])
    def retry_failed_users(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        admin_views.runs_retry_failed(self, request, queryset)

    @admin.action(description="Retry all failed users (also those refused for good)", permissions=["manage_run"])
    def retry_all_failed_users(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        admin_views.runs_retry_failed(self, request, queryset, non_retriable=True)

    @admin.action(description="Cancel run", permissions=["manage_run"])
    def cancel_run(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        admin_views.runs_cancel(self, request, queryset)

    @admin.action(description="Approve guarded run…", permissions=["approve_run"])
    def approve_guarded_run(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> HttpResponse | None:
        return admin_views.runs_approve(self, request, queryset)

    @admin.action(description="Reject guarded run (discard its removals)", permissions=["manage_run"])
    def reject_guarded_run(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        admin_views.runs_reject(self, request, queryset)

    # --- Detail page and custom views --------------------------------------------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = admin_object_or_404(self, request, object_id)
        context = {
            **(extra_context or {}),
            **admin_display.run_detail_context(request, run),
            "can_manage_run": self.has_manage_run_permission(request, run),
            "can_approve_run": self.has_approve_run_permission(request, run),
        }
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):  # type: ignore[no-untyped-def]
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/failures.csv", wrap(self.failures_csv_view), name=f"{prefix}_failures_csv"),
            path("<path:object_id>/plan.csv", wrap(self.plan_csv_view), name=f"{prefix}_plan_csv"),
            path("<path:object_id>/progress/", wrap(self.progress_view), name=f"{prefix}_progress"),
            path("<path:object_id>/retry/", wrap(self.retry_view), name=f"{prefix}_retry"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{prefix}_cancel"),
            path("<path:object_id>/approve/", wrap(self.approve_view), name=f"{prefix}_approve"),
            path("<path:object_id>/reject/", wrap(self.reject_view), name=f"{prefix}_reject"),
            *super().get_urls(),
        ]

    def failures_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.failures_csv(self._viewable_run(request, object_id))

    def _run_if(self, request: HttpRequest, object_id: str,
                allowed: Callable[[HttpRequest, SyncRun | None], bool]) -> SyncRun:
        """The run, if `allowed` lets the user act on it: 403 before anything is looked up,
        404 for an id that is no run (malformed ones included)."""
        if not allowed(request, None):
            raise PermissionDenied
        run = admin_object_or_404(self, request, object_id)
        if not allowed(request, run):
            raise PermissionDenied
        return run

    def _viewable_run(self, request: HttpRequest, object_id: str) -> SyncRun:
        return self._run_if(request, object_id, self.has_view_permission)

    def _run_for(self, request: HttpRequest, object_id: str,
                 allowed: Callable[[HttpRequest, SyncRun | None], bool]) -> QuerySet[SyncRun]:
        """The run as a one-row queryset, what the actions take."""
        return self.get_queryset(request).filter(pk=self._run_if(request, object_id, allowed).pk)

    def plan_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.run_plan_csv(self._viewable_run(request, object_id))

    def progress_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.run_progress_json(self._viewable_run(request, object_id))

    def _back_to_run(self, object_id: str) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:syncs_syncrun_change", args=[object_id]))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        retry = admin_views.runs_retry_failed(
            self, request, self._run_for(request, object_id, self.has_manage_run_permission),
            non_retriable=request.POST.get("non_retriable") == "1",
        )
        if retry is not None:
            return HttpResponseRedirect(reverse("admin:syncs_syncrun_change", args=[retry.pk]))
        return self._back_to_run(object_id)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        admin_views.runs_cancel(self, request, self._run_for(request, object_id, self.has_manage_run_permission))
        return self._back_to_run(object_id)

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        admin_views.runs_reject(self, request, self._run_for(request, object_id, self.has_manage_run_permission))
        return self._back_to_run(object_id)

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        queryset = self._run_for(request, object_id, self.has_approve_run_permission)
        response = admin_views.runs_approve(self, request, queryset, single=True)
        return response if response is not None else self._back_to_run(object_id)


class FailureCodeFilter(admin.SimpleListFilter):
    """Codes seen among recent failures: a DISTINCT over the whole table would scan it."""

    title = "code"
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(code, code) for code in admin_display.recent_failure_codes()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[SyncFailure]) -> QuerySet[SyncFailure]:
        return queryset.filter(code=self.value()) if self.value() else queryset


@admin.register(SyncFailure)
class SyncFailureAdmin(AuditTrailAdmin):
    # Sized for 1280 px (see admin_lists): the distinct id under the identity, the code under
    # the operation, the message on one line, linked to the failure's page where it is shown
    # whole (with the time; the run's number says when).
    list_display = (
        "run_link",
        "identity",
        "operation_cell",
        "message_cell",
        "retriable",
    )
    list_display_links = None
    list_filter = ("operation", "retriable", FailureCodeFilter)
    # Exact matches only, across runs: each has its index; a substring search would scan
    # millions of rows.
    search_fields = ("identity_value__exact", "distinct_id__exact", "code__exact")
    search_help_text = "Exact identity (e.g. an email), distinct id or error code, in every run."
    list_select_related = ("run", "run__sync")
    ordering = ("-id",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    # "Show all" would load the whole table; pages are the only way through it.
    list_max_show_all = 0
    actions = None
    readonly_fields = (
        "run_link",
        "profile",
        "distinct_id",
        "identity_value",
        "operation",
        "code",
        "message",
        "retriable",
        "created_at",
    )
    fields = readonly_fields

    def get_paginator(self, request: HttpRequest, queryset: QuerySet[SyncFailure], per_page: int,
                      orphans: int = 0, allow_empty_first_page: bool = True) -> LargeTablePaginator:
        return large_table_paginator(request, queryset, per_page, allow_empty_first_page)

    @admin.display(description="Run", ordering="run_id")
    def run_link(self, obj: SyncFailure) -> str:
        return admin_lists.run_link_cell(obj.run, is_dry_run=obj.run.is_dry_run)

    @admin.display(description="Identity", ordering="identity_value")
    def identity(self, obj: SyncFailure) -> str:
        return admin_lists.failure_identity_cell(obj)

    @admin.display(description="Operation · code", ordering="code")
    def operation_cell(self, obj: SyncFailure) -> str:
        return admin_lists.failure_operation_cell(obj)

    @admin.display(description="Message")
    def message_cell(self, obj: SyncFailure) -> str:
        return admin_lists.failure_message_cell(obj)
