"""Destination admin: one form for all kinds, write-only secret, connection checks."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.text import Truncator
from django.views.decorators.debug import sensitive_post_parameters

from cohortsync_site.admin_site import admin_object_or_404
from destinations.forms import DestinationForm
from destinations.http import interactive_calls
from destinations.kinds import all_fieldsets, kind_fieldset_classes
from destinations.models import Destination
from destinations.sandbox.inspect import sandbox_state_fetch
from destinations.selectors import (
    ConnectionState,
    destination_connection_state,
    destination_has_secret,
    destination_is_sandbox,
    destinations_for_listing,
    destinations_in_state,
)
from destinations.services import destination_check_connection

SECRET_FIELD = "client_secret"
PROFILE_VIEW_PERMISSION = "cohorts.view_profile"


class ConnectionStateFilter(admin.SimpleListFilter):
    title = "connection"
    parameter_name = "connection"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(state.value, state.label) for state in ConnectionState]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Destination]) -> QuerySet[Destination]:
        return destinations_in_state(queryset, self.value()) if self.value() else queryset


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ("name", "kind", "connection_status", "last_checked", "sync_count")
    list_filter = ("kind", ConnectionStateFilter)
    search_fields = ("name",)
    actions = ["test_connection"]
    readonly_fields = (
        "secret_status",
        "connection_status_detail",
        "connection_checked_at",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "kind")}),
        # Each kind's fieldsets, once; the change form shows those of the selected kind.
        *(
            (fieldset.title, {"classes": (fieldset.css_class,), "description": fieldset.description,
                              "fields": fieldset.fields})
            for fieldset in all_fieldsets()
        ),
        (
            "Credentials",
            {"fields": ("client_id", "new_client_secret", "clear_client_secret", "secret_status")},
        ),
        ("Tuning", {"classes": ("collapse",), "fields": ("options",)}),
        (
            "Connection",
            {"fields": ("connection_status_detail", "connection_checked_at", "created_at", "updated_at")},
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Destination | None = None):  # type: ignore[no-untyped-def]
        if obj is not None:
            return self.fieldsets
        # Nothing is stored or checked yet on the add page.
        hidden_on_add = {"clear_client_secret", "secret_status"}
        return [
            (title, {**options, "fields": tuple(f for f in options["fields"] if f not in hidden_on_add)})
            for title, options in self.fieldsets
            if title != "Connection"
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Destination]:
        return destinations_for_listing(super().get_queryset(request))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Even "starts with" on a secret would let someone guess it one character at a time.
        if SECRET_FIELD in lookup:
            return False
        return super().lookup_allowed(lookup, value, request)

    @method_decorator(sensitive_post_parameters("new_client_secret"))
    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], add: bool = False,
                           change: bool = False, form_url: str = "", obj: Destination | None = None):  # type: ignore[no-untyped-def]
        context["can_see_sandbox_state"] = bool(
            obj and destination_is_sandbox(obj) and self.has_sandbox_state_permission(request, obj)
        )
        context["kind_fieldset_classes"] = kind_fieldset_classes()
        context["can_test_connection"] = bool(obj and self.has_change_permission(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Columns -----------------------------------------------------------------------

    @admin.display(description="Connection")
    def connection_status(self, obj: Destination) -> str:
        state = destination_connection_state(obj)
        if state == ConnectionState.CONNECTED:
            return "Connected ✓"
        if state == ConnectionState.FAILING:
            return Truncator(obj.connection_error or "Connection failed").chars(120)
        return "Never checked"

    @admin.display(description="Connection status")
    def connection_status_detail(self, obj: Destination | None) -> str:
        if obj is None or obj.pk is None:
            return "Never checked: save, then use “Test connection”."
        state = destination_connection_state(obj)
        if state == ConnectionState.CONNECTED:
            return f"Connected ✓: {obj.connection_summary}" if obj.connection_summary else "Connected ✓"
        if state == ConnectionState.FAILING:
            return f"Not connected: {obj.connection_error}"
        return "Never checked: use “Test connection” above."

    @admin.display(description="Last checked", ordering="connection_checked_at", empty_value="never")
    def last_checked(self, obj: Destination):  # type: ignore[no-untyped-def]
        return obj.connection_checked_at

    @admin.display(description="Syncs", ordering="sync_count")
    def sync_count(self, obj: Destination) -> int:
        return getattr(obj, "sync_count", 0)

    @admin.display(description="Stored secret")
    def secret_status(self, obj: Destination | None) -> str:
        return "set" if obj is not None and obj.pk and destination_has_secret(obj) else "not set"

    # --- Test connection ---------------------------------------------------------------

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Destination]) -> None:
        for destination in queryset:
            self._check_and_report(request, destination)

    def _check_and_report(self, request: HttpRequest, destination: Destination) -> None:
        # A person waits for the answer: seconds, not minutes of retries.
        with interactive_calls():
            report = destination_check_connection(destination=destination)
        if report.ok:
            self.message_user(request, f"{destination.name}: Connected: {report.summary}", messages.SUCCESS)
        else:
            self.message_user(request, f"{destination.name}: {report.summary}", messages.ERROR)

    def get_urls(self):  # type: ignore[no-untyped-def]
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/test-connection/",
                self.admin_site.admin_view(self.test_connection_view),
                name=f"{prefix}_test_connection",
            ),
            path(
                "<path:object_id>/sandbox/",
                self.admin_site.admin_view(self.sandbox_state_view),
                name=f"{prefix}_sandbox_state",
            ),
            *super().get_urls(),
        ]

    def has_sandbox_state_permission(self, request: HttpRequest, obj: Destination | None = None) -> bool:
        """What a sandbox received is users' data: it takes seeing the destination and
        seeing profiles."""
        return self.has_view_permission(request, obj) and request.user.has_perm(PROFILE_VIEW_PERMISSION)

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        destination = admin_object_or_404(self, request, object_id)
        if not self.has_change_permission(request, destination):
            raise PermissionDenied
        self._check_and_report(request, destination)
        return HttpResponseRedirect(
            reverse("admin:destinations_destination_change", args=[destination.pk])
        )

    def sandbox_state_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_sandbox_state_permission(request):
            raise PermissionDenied
        destination = admin_object_or_404(self, request, object_id)
        if not self.has_sandbox_state_permission(request, destination):
            raise PermissionDenied
        snapshot = sandbox_state_fetch(destination=destination)
        context = {
            **self.admin_site.each_context(request),
            "title": f"What the sandbox received: {destination.name}",
            "opts": self.opts,
            "original": destination,
            "snapshot": snapshot,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/destinations/destination/sandbox_state.html", context)
