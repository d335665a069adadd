"""Alert rules and their deliveries in the admin. Declarative; sending is a service call."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import BooleanField, ExpressionWrapper, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.debug import sensitive_post_parameters

from alerts.forms import AlertRuleForm
from alerts.models import AlertDelivery, AlertEvent, AlertRule
from alerts.services import alert_rule_send_test
from destinations.models import Destination
from syncs.models import Sync

SECRET_FIELD = "webhook_url"


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ("name", "enabled", "channel", "events_display", "scope_display", "webhook_status")
    list_filter = ("enabled", "channel")
    search_fields = ("name",)
    filter_horizontal = ("syncs", "destinations")
    actions = ["send_test_alert"]
    readonly_fields = ("webhook_status",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "channel", "events")}),
        ("Webhook", {"fields": ("new_webhook_url", "webhook_status", "webhook_format")}),
        ("Email", {"fields": ("recipients",)}),
        ("Scope", {"description": "Leave both empty to watch every sync.", "fields": ("syncs", "destinations")}),
        ("Thresholds", {"fields": ("min_failed_share", "stale_after_intervals")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertRule]:
        # Lists and pages never decrypt the webhook URL; they only say whether one is stored.
        return (
            super().get_queryset(request).defer(SECRET_FIELD)
            .annotate(has_webhook_url=ExpressionWrapper(~Q(webhook_url=""), output_field=BooleanField()))
            .prefetch_related(
                Prefetch("syncs", queryset=Sync.objects.only("pk", "name")),
                # Never decrypt the destinations' secrets to show their names.
                Prefetch("destinations", queryset=Destination.objects.only("pk", "name")),
            )
        )

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if SECRET_FIELD in lookup:
            return False
        return super().lookup_allowed(lookup, value, request)

    @method_decorator(sensitive_post_parameters("new_webhook_url"))
    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "syncs":
            kwargs["queryset"] = db_field.related_model.objects.order_by("name").only("pk", "name")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="Events")
    def events_display(self, obj: AlertRule) -> str:
        return ", ".join(event for event in AlertEvent.values if obj.watches(event)) or "—"

    @admin.display(description="Scope")
    def scope_display(self, obj: AlertRule) -> str:
        names = [s.name for s in obj.syncs.all()] + [f"all of {d.name}" for d in obj.destinations.all()]
        return Truncator(", ".join(names)).chars(80) if names else "All syncs"

    @admin.display(description="Stored webhook URL")
    def webhook_status(self, obj: AlertRule) -> str:
        if obj.pk is None or obj.channel != AlertRule.Channel.WEBHOOK:
            return "—"
        return "set (never shown)" if getattr(obj, "has_webhook_url", False) else "not set"

    def has_send_test_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.send_test_alert")

    @admin.action(description="Send test alert", permissions=["send_test"])
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule in queryset:
            delivery = alert_rule_send_test(rule=rule)
            if delivery.status == AlertDelivery.Status.SENT:
                self.message_user(request, f"Test alert sent through “{rule.name}”.", messages.SUCCESS)
            else:
                self.message_user(request, f"Test alert through “{rule.name}” failed: {delivery.error}",
                                  messages.ERROR)


class RuleFilter(admin.SimpleListFilter):
    """Rules by name, read without their (encrypted) webhook URLs."""

    title = "rule"
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in AlertRule.objects.order_by("name").values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AlertDelivery]) -> QuerySet[AlertDelivery]:
        return queryset.filter(rule_id=self.value()) if self.value() else queryset


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    """The record of every notification: viewable, never added or edited by hand."""

    list_display = ("created_at", "rule", "sync_display", "event", "status_display", "attempts",
                    "sent_at", "short_error")
    list_filter = ("status", "event", RuleFilter)
    list_select_related = ("rule", "sync")
    date_hierarchy = "created_at"
    search_fields = ("rule__name", "sync__name")
    readonly_fields = ("created_at", "rule", "sync_display", "run_link", "event", "status", "attempts",
                       "max_attempts", "last_attempt_at", "next_attempt_at", "sent_at", "error", "message")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[AlertDelivery]:
        return super().get_queryset(request).defer("rule__webhook_url")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The record of what was sent; old deliveries are pruned with the run history.
        return False

    @admin.display(description="Sync")
    def sync_display(self, obj: AlertDelivery) -> str:
        return obj.sync.name if obj.sync_id else (obj.payload.get("sync") or "—")

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: AlertDelivery) -> str:
        return obj.get_status_display()

    @admin.display(description="Error")
    def short_error(self, obj: AlertDelivery) -> str:
        return Truncator(obj.error).chars(100) or "—"

    @admin.display(description="Message")
    def message(self, obj: AlertDelivery) -> str:
        return obj.payload.get("message", "")

    @admin.display(description="Run")
    def run_link(self, obj: AlertDelivery) -> str:
        if not obj.run_id:
            return "—"
        return format_html('<a href="{}">#{}</a>', reverse("admin:syncs_syncrun_change", args=[obj.run_id]), obj.run_id)
