"""Admin for sources (write-only password, Test connection), profile imports (Run now) and
the record of every import run."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.views.decorators.debug import sensitive_post_parameters

from sources.forms import ProfileImportForm, SourceForm
from sources.imports import mark_shown
from sources.models import ImportRun, ProfileImport, Source
from sources.services import (
    ImportRunConflict,
    import_run_request,
    profile_import_save,
    source_check_connection,
)

SHOWN_REJECTS = 200


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ("name", "kind", "url", "connection_status", "connection_checked_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    actions = ["test_connection"]
    readonly_fields = ("kind", "password_status", "connection_status_detail", "connection_checked_at",
                       "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "url", "kind")}),
        ("Credentials", {"fields": ("new_password", "clear_password", "password_status")}),
        ("Options", {"fields": ("options",)}),
        ("Connection", {"fields": ("connection_status_detail", "connection_checked_at", "created_at", "updated_at")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Source | None = None) -> Any:
        if obj is not None:
            return self.fieldsets
        return [
            (None, {"fields": ("name", "url")}),
            ("Credentials", {"fields": ("new_password",)}),
            ("Options", {"fields": ("options",)}),
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        # The password is decrypted only when a connection needs it.
        return super().get_queryset(request).defer("password")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if "password" in lookup:
            return False
        return super().lookup_allowed(lookup, value, request)

    @method_decorator(sensitive_post_parameters("new_password", "url"))
    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="Stored password")
    def password_status(self, obj: Source) -> str:
        has = Source.objects.filter(pk=obj.pk).exclude(password="").exists()
        return "set" if has else "not set"

    @admin.display(description="Connection")
    def connection_status(self, obj: Source) -> str:
        if obj.is_connected:
            return "Connected ✓"
        if obj.is_connected is False:
            return Truncator(obj.connection_error or "Connection failed").chars(120)
        return "Never checked"

    @admin.display(description="Connection status")
    def connection_status_detail(self, obj: Source) -> str:
        if obj.is_connected:
            return f"Connected ✓: {obj.connection_summary}"
        if obj.is_connected is False:
            return f"Not connected: {obj.connection_error}"
        return "Never checked: select it in the list and run “Test connection”."

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            check = source_check_connection(source=source)
            level = messages.SUCCESS if check.ok else messages.ERROR
            prefix = "Connected: " if check.ok else ""
            self.message_user(request, f"{source.name}: {prefix}{check.summary}", level)


@admin.register(ProfileImport)
class ProfileImportAdmin(admin.ModelAdmin):
    form = ProfileImportForm
    list_display = ("name", "source", "schedule", "incremental_column", "delete_missing", "last_run",
                    "high_water")
    list_filter = ("enabled", "delete_missing", "source")
    list_select_related = ("source",)
    search_fields = ("name",)
    actions = ["run_now", "run_full_now"]
    readonly_fields = ("high_water", "recent_runs", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "source", "sql")}),
        ("Schedule", {"fields": ("every_minutes", "enabled")}),
        ("Incremental reads and deletes", {"fields": ("incremental_column", "high_water", "delete_missing")}),
        ("Runs", {"fields": ("recent_runs", "created_at", "updated_at")}),
    )

    def save_model(self, request: HttpRequest, obj: ProfileImport, form: Any, change: bool) -> None:
        profile_import_save(profile_import=obj, changed=form.changed_data if change else ())

    @admin.display(description="Schedule")
    def schedule(self, obj: ProfileImport) -> str:
        if not obj.every_minutes:
            return "when asked"
        suffix = "" if obj.enabled else " (disabled)"
        return f"every {obj.every_minutes} min{suffix}"

    @admin.display(description="High-water mark")
    def high_water(self, obj: ProfileImport) -> str:
        if not obj.incremental_column:
            return "— (every run reads everything)"
        shown = mark_shown(obj.high_water_mark)
        return "none yet: the next run reads everything" if shown is None else str(shown)

    @admin.display(description="Last run")
    def last_run(self, obj: ProfileImport) -> str:
        run = obj.runs.order_by("-created_at").first()
        if run is None:
            return "never"
        url = reverse("admin:sources_importrun_change", args=[run.pk])
        return format_html("<a href='{}'>{}</a> {}", url, run.get_status_display(),
                           run.created_at.strftime("%Y-%m-%d %H:%M"))

    @admin.display(description="Recent runs")
    def recent_runs(self, obj: ProfileImport) -> str:
        if obj.pk is None:
            return "—"
        runs = list(obj.runs.order_by("-created_at")[:10])
        if not runs:
            return "No run yet."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>#{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (reverse("admin:sources_importrun_change", args=[run.pk]), run.pk, run.get_status_display(),
                 run.created_at.strftime("%Y-%m-%d %H:%M:%S"), _counts(run))
                for run in runs
            ),
        )
        url = reverse("admin:sources_importrun_changelist") + f"?profile_import__id__exact={obj.pk}"
        return format_html("<table>{}</table><p><a href='{}'>Every run</a></p>", rows, url)

    def has_run_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sources.run_import")

    @admin.action(description="Run now", permissions=["run_import"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ProfileImport]) -> None:
        self._request_runs(request, queryset, full=False)

    @admin.action(description="Run a full import now (ignore the high-water mark)", permissions=["run_import"])
    def run_full_now(self, request: HttpRequest, queryset: QuerySet[ProfileImport]) -> None:
        self._request_runs(request, queryset, full=True)

    def _request_runs(self, request: HttpRequest, queryset: QuerySet[ProfileImport], *, full: bool) -> None:
        for profile_import in queryset:
            try:
                run = import_run_request(profile_import=profile_import, trigger=ImportRun.Trigger.MANUAL,
                                         full=full, requested_by=request.user)
            except ImportRunConflict as conflict:
                self.message_user(request, conflict.message, messages.WARNING)
                continue
            url = reverse("admin:sources_importrun_change", args=[run.pk])
            self.message_user(
                request,
                format_html("{}: run <a href='{}'>#{}</a> queued.", profile_import.name, url, run.pk),
                messages.SUCCESS,
            )


def _counts(run: ImportRun) -> str:
    return (
        f"{run.rows_read:,} read, {run.created:,} created, {run.updated:,} updated, "
        f"{run.deleted:,} deleted, {run.rejected:,} rejected"
    )


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "trigger", "created_at", "duration", "rows_read", "created",
                    "updated", "deleted", "rejected", "mark")
    list_filter = ("status", "trigger", "profile_import")
    list_select_related = ("profile_import",)
    date_hierarchy = "created_at"
    fields = ("profile_import", "status", "trigger", "triggered_by", "is_full", "created_at", "started_at",
              "finished_at", "duration", "rows_read", "created", "updated", "unchanged", "deleted", "rejected",
              "mark_before", "mark", "error_code", "error_message", "rejects_table")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ImportRun | None = None) -> bool:
        return False

    @admin.display(description="Duration")
    def duration(self, obj: ImportRun) -> str:
        seconds = obj.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="High-water mark after")
    def mark(self, obj: ImportRun) -> str:
        shown = mark_shown(obj.high_water_mark)
        return "—" if shown is None else str(shown)

    @admin.display(description="High-water mark before")
    def mark_before(self, obj: ImportRun) -> str:
        shown = mark_shown(obj.high_water_mark_before)
        return "— (read everything)" if shown is None or obj.is_full else str(shown)

    @admin.display(description="Rejected rows")
    def rejects_table(self, obj: ImportRun) -> str:
        rejects = obj.rejects or []
        if not rejects:
            return "None."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>",
            ((reject.get("row"), reject.get("reason")) for reject in rejects[:SHOWN_REJECTS]),
        )
        more = len(rejects) - SHOWN_REJECTS
        note = f" (and {more:,} more listed; {obj.rejected:,} in all)" if more > 0 else ""
        return format_html("<table><thead><tr><th>Row</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>{}",
                           rows, note)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[ImportRun], search_term: str) -> Any:
        term = search_term.strip()
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return super().get_search_results(request, queryset, search_term)

    search_fields = ("profile_import__name",)

