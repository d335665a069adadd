"""Admin for profiles (with file import) and cohorts (rules, static lists, members)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import slugify

from cohorts.admin_views import rules_preview_json
from cohorts.forms import RULE_OPS, CohortForm, ProfileForm, ProfileImportForm
from cohorts.importing import ImportFileError, cohort_static_members_replace, profiles_import
from cohorts.models import Cohort, Profile
from cohorts.rules import RuleError
from cohorts.selectors import (
    EMAIL_PROPERTY,
    PREVIEW_LIMIT,
    cohort_dynamic_sync_names,
    cohort_member_page_count,
    cohort_members,
    cohort_members_preview,
    profile_property_names,
    profiles_search,
)
from cohortsync_site.admin_paging import LargeTablePaginator, large_table_paginator
from cohortsync_site.admin_site import admin_object_or_404
from cohortsync_site.csv_download import csv_download
from cohortsync_site.database import PageCount
from syncs.selectors import cohort_syncs_with_counts

SHOWN_REJECTS = 100
EXPORT_URL_NAME = "admin:syncs_sync_export_cohorts"
# Member lists show users' ids, emails and properties: seeing them takes seeing profiles.
PROFILE_VIEW_PERMISSION = "cohorts.view_profile"
# "Export to…" creates syncs and runs them (syncs/admin.py checks the same on its page).
EXPORT_PERMISSIONS = ("syncs.view_sync", "syncs.add_sync", "syncs.run_sync")


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ("distinct_id", "email", "updated_at")
    search_fields = ("distinct_id",)
    search_help_text = "Exact email, or a distinct id or the start of one."
    readonly_fields = ("properties_table", "created_at", "updated_at")
    list_per_page = 100
    # Counting a million-row table on every search is the slowest part of the page; the list
    # is paged without counting at all (10M profiles: a COUNT(*) of seconds per page view).
    show_full_result_count = False
    paginator = LargeTablePaginator
    # "Show all" would load the whole table; pages are the only way through it.
    list_max_show_all = 0
    change_list_template = "admin/cohorts/profile/change_list.html"

    def get_paginator(self, request: HttpRequest, queryset: QuerySet[Profile], per_page: int,
                      orphans: int = 0, allow_empty_first_page: bool = True) -> LargeTablePaginator:
        return large_table_paginator(request, queryset, per_page, allow_empty_first_page)

    def get_fields(self, request: HttpRequest, obj: Profile | None = None) -> list[str]:
        # The table shows what is stored; the JSON below it is how to change it. A new
        # profile has nothing to show yet.
        if obj is None:
            return ["distinct_id", "properties"]
        return ["distinct_id", "properties_table", "properties", "created_at", "updated_at"]

    @admin.display(description="Email")
    def email(self, obj: Profile) -> str:
        value = obj.properties.get(EMAIL_PROPERTY) if isinstance(obj.properties, dict) else None
        return value if isinstance(value, str) else "—"

    @admin.display(description="Current properties")
    def properties_table(self, obj: Profile) -> str:
        if not obj.properties:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td><code>{}</code></td></tr>",
            (
                (key, json.dumps(value, ensure_ascii=False))
                for key, value in sorted(obj.properties.items())
            ),
        )
        return format_html("<table>{}</table>", rows)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Profile], search_term: str
    ) -> tuple[QuerySet[Profile], bool]:
        return profiles_search(queryset, search_term), False

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name=f"{prefix}_import"),
            *super().get_urls(),
        ]

    def has_import_permission(self, request: HttpRequest) -> bool:
        """An import creates profiles and merges properties into existing ones."""
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_import": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        report = None
        if request.method == "POST":
            form = ProfileImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    report = profiles_import(
                        source=upload, file_format=form.cleaned_data["file_format"] or None
                    )
                except ImportFileError as exc:
                    self.message_user(
                        request, f"Nothing was imported from {upload.name}: {exc}", messages.ERROR
                    )
                else:
                    level = messages.SUCCESS if not report.rejected else messages.WARNING
                    self.message_user(request, f"Imported {upload.name}: {report.summary()}", level)
                    if report.rejected and not report.rows_accepted:
                        self.message_user(
                            request, "Every row was rejected; see the reasons below.", messages.ERROR
                        )
        else:
            form = ProfileImportForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Import profiles",
            "opts": self.opts,
            "form": form,
            "report": report,
            "rejects": report.rejects[:SHOWN_REJECTS] if report else [],
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/cohorts/profile/import.html", context)


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    form = CohortForm
    list_display = ("name", "kind", "definition", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name", "description")
    actions = ["export_to", "refresh_now"]
    readonly_fields = ("listed_ids", "member_count", "members_preview", "refresh_status", "created_at",
                       "updated_at")
    change_form_template = "admin/cohorts/cohort/change_form.html"

    class Media:
        js = ("cohorts/rule_builder.js",)
        css = {"all": ("cohorts/rule_builder.css",)}

    def get_fieldsets(self, request: HttpRequest, obj: Cohort | None = None) -> list[Any]:
        fieldsets: list[Any] = [
            (None, {"fields": ("name", "kind", "description")}),
            (
                "Rules",
                {
                    "classes": ("kind-rules",),
                    "description": "Used when the kind is “Rules over profile properties”.",
                    "fields": ("rules",),
                },
            ),
            (
                "SQL query",
                {
                    "classes": ("kind-sql",),
                    "description": "Used when the kind is “SQL query over a source”. The query "
                    "returns distinct ids; they are read again before every run of a sync that "
                    "uses the cohort, and by “Refresh now”.",
                    "fields": ("source", "sql") + (("refresh_status",) if obj else ()),
                },
            ),
            (
                "Static list",
                {
                    "classes": ("kind-static",),
                    "description": "Used when the kind is “Static list of distinct ids”. Listed "
                    "ids become members as soon as a profile with that id exists.",
                    "fields": (
                        ("listed_ids",) if obj else ()
                    ) + ("members_text", "members_file", "clear_members"),
                },
            ),
        ]
        if obj:
            members = ("member_count", "members_preview") if self.has_members_permission(request, obj) else (
                "member_count",
            )
            fieldsets.append(("Members now", {"fields": (*members, "created_at", "updated_at")}))
        return fieldsets

    def has_members_permission(self, request: HttpRequest, obj: Cohort | None = None) -> bool:
        """Who may list a cohort's members (the preview and the CSV)."""
        return self.has_view_permission(request, obj) and request.user.has_perm(PROFILE_VIEW_PERMISSION)

    def has_export_permission(self, request: HttpRequest) -> bool:
        """"Export to…" creates syncs and runs them (the export page checks the same)."""
        return self.has_view_permission(request) and request.user.has_perms(EXPORT_PERMISSIONS)

    def has_preview_permission(self, request: HttpRequest) -> bool:
        """The live count while editing rules: whoever may add or change cohorts."""
        return self.has_view_permission(request) and (
            self.has_add_permission(request) or self.has_change_permission(request)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cohort]:
        # Listing counts only the cheap part (listed ids); evaluating every rules cohort
        # against a million profiles per page view would make the list unusable.
        return super().get_queryset(request).select_related("source").annotate(
            listed_count=Count("static_memberships")
        )

    @admin.display(description="Definition")
    def definition(self, obj: Cohort) -> str:
        if obj.kind == Cohort.Kind.STATIC:
            count = getattr(obj, "listed_count", None)
            return f"{count:,} listed ids" if count is not None else "static list"
        if obj.kind == Cohort.Kind.SQL:
            count = getattr(obj, "listed_count", None)
            return f"SQL on {obj.source}: {count:,} ids at the last refresh" if count is not None else "SQL"
        if not obj.rules:
            return "no rules yet"
        conditions = _count_conditions(obj.rules)
        return f"{conditions} condition{'s' if conditions != 1 else ''}"

    @admin.display(description="Listed ids")
    def listed_ids(self, obj: Cohort) -> str:
        count = obj.static_memberships.count()
        return f"{count:,} distinct ids listed"

    @admin.display(description="Members")
    def member_count(self, obj: Cohort) -> str:
        count = _stored_member_count(obj)
        if isinstance(count, RuleError):
            return f"The stored rules are invalid: {count}"
        if not count.exact:
            return (f"About {count.value:,} profiles match right now (PostgreSQL's estimate: "
                    "counting them exactly would keep this page waiting).")
        return f"{count.value:,} profiles match right now."

    @admin.display(description="First members")
    def members_preview(self, obj: Cohort) -> str:
        try:
            preview = list(cohort_members_preview(_stored(obj), limit=PREVIEW_LIMIT))
        except RuleError:
            return "—"
        if not preview:
            return "No profile matches."
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td></tr>",
            (
                (
                    reverse("admin:cohorts_profile_change", args=[profile.pk]),
                    profile.distinct_id,
                    _email(profile),
                )
                for profile in preview
            ),
        )
        return format_html(
            "<table><thead><tr><th>Distinct id</th><th>Email</th></tr></thead>"
            "<tbody>{}</tbody></table><p class='help'>The first {} by distinct id.</p>",
            rows,
            len(preview),
        )

    @admin.display(description="Last refresh")
    def refresh_status(self, obj: Cohort) -> str:
        if obj.refresh_error:
            return f"Failed: {obj.refresh_error}"
        if obj.refreshed_at is None:
            return "Never refreshed: run “Refresh now”, or a sync of it."
        return f"{timezone.localtime(obj.refreshed_at):%Y-%m-%d %H:%M:%S %Z}"

    def save_model(self, request: HttpRequest, obj: Cohort, form: CohortForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        ids = form.static_member_ids()
        if ids is not None:
            count = cohort_static_members_replace(cohort=obj, distinct_ids=ids)
            self.message_user(request, f"The static list of “{obj}” now has {count:,} distinct ids.")
        if obj.kind == Cohort.Kind.SQL and (not change or {"kind", "source", "sql"} & set(form.changed_data)):
            self._refresh_and_report(request, obj)

    @admin.action(description="Refresh now (SQL cohorts)", permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Cohort]) -> None:
        others = queryset.exclude(kind=Cohort.Kind.SQL).count()
        if others:
            self.message_user(request, f"{others} selected cohort(s) are not SQL cohorts: nothing to refresh.",
                              messages.WARNING)
        for cohort in queryset.filter(kind=Cohort.Kind.SQL):
            self._refresh_and_report(request, cohort)

    def _refresh_and_report(self, request: HttpRequest, cohort: Cohort) -> None:
        from sources.connections import SourceError
        from sources.services import cohort_refresh

        try:
            count = cohort_refresh(cohort=cohort)
        except SourceError as exc:
            self.message_user(request, f"“{cohort}” could not be refreshed: {exc.message}", messages.ERROR)
            return
        self.message_user(request, f"“{cohort}” refreshed: its query returned {count:,} distinct ids.",
                          messages.SUCCESS)

    @admin.action(description="Export to…", permissions=["export"])
    def export_to(self, request: HttpRequest, queryset: QuerySet[Cohort]) -> HttpResponse | None:
        try:
            url = reverse(EXPORT_URL_NAME)
        except NoReverseMatch:
            self.message_user(
                request,
                "Exporting is not available: the syncs admin is not installed.",
                messages.ERROR,
            )
            return None
        ids = ",".join(str(pk) for pk in queryset.order_by("pk").values_list("pk", flat=True))
        return HttpResponseRedirect(f"{url}?cohorts={ids}")

    def get_urls(self) -> list[Any]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/members.csv",
                self.admin_site.admin_view(self.members_csv_view),
                name=f"{prefix}_members_csv",
            ),
            path("preview/", self.admin_site.admin_view(self.preview_view), name=f"{prefix}_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_preview_permission(request):
            raise PermissionDenied
        return rules_preview_json(request, show_members=request.user.has_perm(PROFILE_VIEW_PERMISSION))

    def members_csv_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_members_permission(request):
            raise PermissionDenied
        cohort = admin_object_or_404(self, request, object_id)
        if not self.has_members_permission(request, cohort):
            raise PermissionDenied
        try:
            members = cohort_members(cohort)
        except RuleError as exc:
            self.message_user(request, f"The stored rules are invalid: {exc}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:cohorts_cohort_change", args=[cohort.pk]))
        return csv_download(
            filename=f"{slugify(cohort.name) or 'cohort'}-members.csv",
            header=["distinct_id", EMAIL_PROPERTY, "properties"],
            rows=_member_rows(members),
        )

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> HttpResponse:
        obj: Cohort | None = kwargs.get("obj")
        try:
            context["export_url"] = reverse(EXPORT_URL_NAME) if self.has_export_permission(request) else None
        except NoReverseMatch:
            context["export_url"] = None
        context["can_download_members"] = self.has_members_permission(request, obj)
        context["cohort_syncs"] = cohort_sync_rows(obj, request) if obj is not None and obj.pk else []
        context["cohort_editor_config"] = self._editor_config(request, obj)
        return super().render_change_form(request, context, *args, **kwargs)

    def _editor_config(self, request: HttpRequest, obj: Cohort | None) -> dict[str, Any]:
        """Settings for the rule builder's script."""
        count = _stored_member_count(obj) if obj is not None and obj.pk else None
        return {
            "previewUrl": reverse("admin:cohorts_cohort_preview") if self.has_preview_permission(request) else "",
            "propertyNames": profile_property_names(),
            "ops": RULE_OPS,
            # What the live count is compared with: the cohort as saved, and who syncs it.
            "currentCount": count.value if isinstance(count, PageCount) else None,
            "dynamicSyncs": cohort_dynamic_sync_names(obj) if obj is not None else [],
        }


def cohort_sync_rows(cohort: Cohort, request: HttpRequest) -> list[dict[str, Any]]:
    """The syncs using the cohort, for its page; links only for who may open syncs."""
    can_open = request.user.has_perm("syncs.view_sync")
    return [
        {
            "sync": sync,
            "url": reverse("admin:syncs_sync_change", args=[sync.pk]) if can_open else "",
            "acknowledged": str(acknowledged),
        }
        for sync, acknowledged in cohort_syncs_with_counts(cohort.pk)
    ]


def _stored(cohort: Cohort) -> Cohort:
    """The cohort as saved: after a refused save the page's object holds the edits."""
    cached = getattr(cohort, "_admin_stored", None)
    if cached is None:
        cached = Cohort.objects.filter(pk=cohort.pk).first() or cohort
        cohort._admin_stored = cached  # type: ignore[attr-defined]
    return cached


def _stored_member_count(cohort: Cohort) -> PageCount | RuleError:
    """The saved cohort's member count, counted once per page (the field and the editor's
    script both show it)."""
    cached = getattr(cohort, "_admin_member_count", None)
    if cached is None:
        try:
            cached = cohort_member_page_count(_stored(cohort))
        except RuleError as exc:
            cached = exc
        cohort._admin_member_count = cached  # type: ignore[attr-defined]
    return cached


def _member_rows(members: QuerySet[Profile]) -> Iterator[list[str]]:
    rows = members.order_by("distinct_id").values_list("distinct_id", "properties")
    for distinct_id, properties in rows.iterator(chunk_size=2000):
        email = properties.get(EMAIL_PROPERTY) if isinstance(properties, dict) else None
        yield [
            distinct_id,
            email if isinstance(email, str) else "",
            json.dumps(properties, ensure_ascii=False, sort_keys=True),
        ]


def _email(profile: Profile) -> str:
    value = profile.properties.get(EMAIL_PROPERTY) if isinstance(profile.properties, dict) else None
    return value if isinstance(value, str) else "—"


def _count_conditions(node: Any) -> int:
    if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("all", "any"):
        children = next(iter(node.values()))
        return sum(_count_conditions(child) for child in children) if isinstance(children, list) else 0
    return 1
