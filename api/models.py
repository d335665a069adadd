"""Bearer tokens of the profile ingestion API: named, stored hashed, revocable."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """One token an application sends as `Authorization: Bearer ...`.

    Only a SHA-256 hash is stored: the token itself is shown once, when it is created.
    Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
    """

    name = models.CharField(max_length=200, unique=True, help_text="Who uses it, e.g. 'Web app (production)'.")
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
