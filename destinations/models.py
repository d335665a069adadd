from __future__ import annotations

from django.db import models

from destinations.encryption import EncryptedTextField
from destinations.kinds import kind_choices, kind_spec


class Destination(models.Model):
    """A configured integration with one marketing platform account."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=kind_choices)

    # Kind settings: which kinds use each one, with its label, help and normaliser, is in
    # the kinds' specs (destinations.kinds); a kind leaves the others empty.
    subdomain = models.CharField(max_length=64, blank=True)
    account_id = models.CharField(max_length=32, blank=True)
    auth_base_url = models.URLField(blank=True)
    data_extension_key = models.CharField(max_length=200, blank=True)
    key_column = models.CharField(max_length=128, blank=True, default="")
    attribute_set = models.CharField(max_length=200, blank=True, default="")
    base_url = models.URLField(blank=True)

    # --- Credentials (every kind) ---
    client_id = models.CharField(max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True, default="")

    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Tuning knobs: rate limits, concurrency, batch sizes (see README, 'Destinations').",
    )

    # --- Connection status, written by "Test connection" ---
    connection_checked_at = models.DateTimeField(null=True, blank=True)
    is_connected = models.BooleanField(null=True, blank=True)
    connection_error = models.TextField(blank=True, default="")
    connection_summary = models.TextField(
        blank=True, default="", help_text="What the last successful check read."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def default_interval_minutes(self) -> int:
        return kind_spec(self.kind).default_interval_minutes


class ApiBudget(models.Model):
    """The API budget of one destination account, shared by every process and host when the
    budget lives in the database (destinations.budget_stores.DatabaseBudgetStore): the
    recent request starts, the requests in flight (leases that expire, so a killed worker
    cannot keep its places) and the calls of the current quota day. One row per account,
    locked while a request start is decided."""

    account_key = models.CharField(max_length=500, unique=True)
    # Request starts (seconds since the epoch) within the account's window, oldest first.
    starts = models.JSONField(default=list)
    # Requests in flight: lease id -> when the lease expires (seconds since the epoch).
    leases = models.JSONField(default=dict)
    # The quota day (YYYY-MM-DD in the platform's zone) and the calls counted in it.
    day = models.CharField(max_length=10, blank=True, default="")
    day_calls = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API budget"

    def __str__(self) -> str:
        return self.account_key
