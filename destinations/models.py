from __future__ import annotations

from django.db import models

from destinations.encryption import EncryptedTextField


class DestinationKind(models.TextChoices):
    SFMC_DATA_EXTENSION = "sfmc_data_extension", "Salesforce Marketing Cloud: data extension"
    SFMC_CONTACTS = "sfmc_contacts", "Salesforce Marketing Cloud: contacts"
    MARKETO = "marketo", "Marketo"


SFMC_KINDS = frozenset({DestinationKind.SFMC_DATA_EXTENSION, DestinationKind.SFMC_CONTACTS})

# Dynamic syncs run this often unless the sync says otherwise (the seeds' cadence).
DEFAULT_INTERVAL_MINUTES = {
    DestinationKind.SFMC_DATA_EXTENSION: 15,
    DestinationKind.SFMC_CONTACTS: 15,
    DestinationKind.MARKETO: 120,
}


class Destination(models.Model):
    """A configured integration with one marketing platform account."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=DestinationKind.choices)

    # --- Salesforce Marketing Cloud ---
    subdomain = models.CharField(
        max_length=64,
        blank=True,
        help_text="The tenant subdomain from Setup > Apps > Installed Packages, e.g. "
        "'mc563885gzs27c5t9-63k636ttgm'. A pasted URL such as "
        "https://mcXXXX.auth.marketingcloudapis.com/ is reduced to it.",
    )
    account_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="Optional MID of the business unit to write to; empty uses the package's default.",
    )
    auth_base_url = models.URLField(
        blank=True,
        help_text="Optional. Defaults to https://{subdomain}.auth.marketingcloudapis.com.",
    )
    data_extension_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="External key (not the name) of the data extension that holds one row per user.",
    )
    key_column = models.CharField(
        max_length=128,
        blank=True,
        default="",
        help_text="Primary-key column of the data extension that holds the user's identity, "
        "e.g. 'SubscriberKey' (Mixpanel-style) or 'Contact Key' (Amplitude-style).",
    )
    attribute_set = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Attribute set that holds one text attribute per cohort (contacts API), "
        "usually 'Email Demographics'.",
    )

    # --- Marketo ---
    base_url = models.URLField(
        blank=True,
        help_text="Marketo REST endpoint without /rest, e.g. https://123-ABC-456.mktorest.com "
        "(Admin > Web Services).",
    )

    # --- Credentials (both platforms) ---
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
    def is_sfmc(self) -> bool:
        return self.kind in SFMC_KINDS

    @property
    def default_interval_minutes(self) -> int:
        return DEFAULT_INTERVAL_MINUTES[DestinationKind(self.kind)]
