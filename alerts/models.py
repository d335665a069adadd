"""Alert rules, what each rule last saw of each sync, and every notification sent."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from destinations.encryption import EncryptedTextField
from destinations.models import Destination
from syncs.models import Sync, SyncRun

DEFAULT_STALE_AFTER_INTERVALS = 3


class AlertEvent(models.TextChoices):
    FAILED = "failed", "Failed (run-level error)"
    PARTIAL = "partial", "Partial (some users failed)"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval (mass-removal guard)"
    STALE = "stale", "Stale (no finished run for too long)"
    RECOVERED = "recovered", "Recovered (first success after any of the above)"


# The events a delivery may carry: the rule events plus the admin's test alert.
TEST_EVENT = "test"
DELIVERY_EVENTS = [*AlertEvent.choices, (TEST_EVENT, "Test alert")]


class SyncCondition(models.TextChoices):
    """How a sync looks to one rule; a change to a problem (or back to ok) is notified."""

    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    PARTIAL = "partial", "Partial"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    STALE = "stale", "Stale"


PROBLEM_CONDITIONS = frozenset(
    {SyncCondition.FAILED, SyncCondition.PARTIAL, SyncCondition.AWAITING_APPROVAL, SyncCondition.STALE}
)


class AlertRule(models.Model):
    """Who is told (a channel), about what (events), for which syncs (a scope)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class WebhookFormat(models.TextChoices):
        JSON = "json", "JSON (CohortSync payload)"
        SLACK = "slack", "Slack incoming webhook"

    name = models.CharField(max_length=200, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    events = models.JSONField(
        default=list, help_text="The events this rule notifies: " + ", ".join(AlertEvent.values) + "."
    )
    enabled = models.BooleanField(default=True)
    # A webhook URL carries its own credential (Slack's does): encrypted, never shown again.
    webhook_url = EncryptedTextField(blank=True, default="")
    webhook_format = models.CharField(
        max_length=16, choices=WebhookFormat.choices, default=WebhookFormat.JSON, blank=True
    )
    email_to = models.JSONField(default=list, blank=True, help_text="Email recipients.")
    syncs = models.ManyToManyField(
        Sync, blank=True, related_name="alert_rules",
        help_text="Only these syncs (and those of the destinations below). None of either: all syncs.",
    )
    destinations = models.ManyToManyField(
        Destination, blank=True, related_name="alert_rules",
        help_text="Every sync to these destinations. None (and no syncs): all syncs.",
    )
    min_failed_share = models.FloatField(
        null=True, blank=True,
        help_text="Partial runs notify only when at least this share of the users sent failed "
        "(e.g. 0.01 for 1 %). Empty: any failed user.",
    )
    stale_after_intervals = models.PositiveIntegerField(
        default=DEFAULT_STALE_AFTER_INTERVALS,
        help_text="A dynamic sync is stale after this many of its intervals without a finished run.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("send_test_alert", "Can send test alerts")]

    def __str__(self) -> str:
        return self.name

    def watches(self, event: str) -> bool:
        return event in (self.events or [])


class AlertState(models.Model):
    """What one rule last saw of one sync: notifications go out only when it changes."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="alert_states")
    condition = models.CharField(max_length=20, choices=SyncCondition.choices, default=SyncCondition.OK)
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "sync"], name="one_alert_state_per_rule_and_sync")]

    def __str__(self) -> str:
        return f"{self.rule} / {self.sync}: {self.condition}"


class AlertDelivery(models.Model):
    """One notification to one rule's channel, with every attempt's outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (to be sent or retried)"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="deliveries")
    sync = models.ForeignKey(Sync, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    event = models.CharField(max_length=20, choices=DELIVERY_EVENTS)
    # What is sent, fixed when the event happened (retries send the same): names, counts, the
    # message and the run's address. Never a secret.
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_event_display()} to {self.rule}"
