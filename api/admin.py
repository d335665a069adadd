"""API tokens in the admin: created with a name (the value shown once), revoked, never edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from api.models import ApiToken
from api.services import api_token_issue, api_token_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix_shown", "status", "created_at", "last_used_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    actions = ["revoke"]
    fields = ("name", "prefix_shown", "status", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix_shown", "status", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return ("name",) if obj is None else self.fields

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if "token_hash" in lookup:
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="Token starts with")
    def prefix_shown(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…" if obj.prefix else "—"

    @admin.display(description="Status")
    def status(self, obj: ApiToken) -> str:
        return "active" if obj.is_active else "revoked"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        # Kept on the request only, for the page that shows it once (response_add).
        request._cohortsync_new_token = api_token_issue(token=obj, created_by=request.user)  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        plaintext = getattr(request, "_cohortsync_new_token", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"API token “{obj.name}” created",
            "opts": self.opts,
            "token": obj,
            "plaintext": plaintext,
        }
        response = TemplateResponse(request, "admin/api/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(api_token_revoke(token=token) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked: they are refused from now on.", messages.SUCCESS)
