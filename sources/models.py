"""Sources (read-only connections to the customer's own database), the scheduled profile
imports that read them, and the record of every import run."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from destinations.encryption import EncryptedTextField

DEFAULT_STATEMENT_TIMEOUT_SECONDS = 300


class SourceKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    SQLITE = "sqlite", "SQLite"


class Source(models.Model):
    """A named, read-only connection to a database CohortSync reads profiles and cohorts from."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    url = models.CharField(
        max_length=1000,
        help_text="postgres://user@host:5432/db, mysql://user@host:3306/db or "
        "sqlite:////absolute/path.db (sqlite:///relative/path.db is relative to the project "
        "directory). A password in the URL is moved to the encrypted password and never "
        "shown again.",
    )
    password = EncryptedTextField(blank=True, default="")
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"statement_timeout_seconds": 300, "time_zone": "UTC"}: the longest one '
        "read may take, and the zone of timestamps stored without one.",
    )

    # --- Connection status, written by "Test connection" and check_source ---
    connection_checked_at = models.DateTimeField(null=True, blank=True)
    is_connected = models.BooleanField(null=True, blank=True)
    connection_error = models.TextField(blank=True, default="")
    connection_summary = models.TextField(blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def statement_timeout_seconds(self) -> float:
        value = (self.options or {}).get("statement_timeout_seconds", DEFAULT_STATEMENT_TIMEOUT_SECONDS)
        return float(value)

    @property
    def time_zone(self) -> str:
        return str((self.options or {}).get("time_zone") or "UTC")


class ProfileImport(models.Model):
    """A query over a source whose rows are merged into profiles, now or on a schedule."""

    name = models.CharField(max_length=200, unique=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="profile_imports")
    sql = models.TextField(
        help_text="One SELECT (or WITH ... SELECT) returning a distinct_id column and one "
        'column per property; alias a column "$email" to fill $email. A NULL removes the '
        "property."
    )
    every_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Run on this schedule; empty runs only when asked."
    )
    incremental_column = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="A timestamp or increasing number in the result (e.g. updated_at): each run "
        "reads only rows at or past the last run's highest value. Empty reads everything.",
    )
    delete_missing = models.BooleanField(
        default=False,
        help_text="Delete the profiles this import returned before and its full query no longer "
        "returns. Incremental imports check this on full runs only.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled imports are not scheduled.")
    high_water_mark = models.JSONField(
        null=True,
        blank=True,
        help_text='The highest incremental value read so far, e.g. {"type": "datetime", '
        '"value": "2025-01-01T00:00:00+00:00"}.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("run_import", "Can run profile imports")]

    def __str__(self) -> str:
        return self.name


class ImportRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (already running)"


ACTIVE_IMPORT_STATUSES = (ImportRunStatus.QUEUED, ImportRunStatus.RUNNING)


class ImportRun(models.Model):
    """One execution of a profile import, with what it read, wrote and refused."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual (admin)"
        SCHEDULE = "schedule", "Schedule"
        BEFORE_SYNC = "before_sync", "Before a scheduled sync"
        CLI = "cli", "Command line"

    profile_import = models.ForeignKey(ProfileImport, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=ImportRunStatus.choices, default=ImportRunStatus.QUEUED
    )
    is_full = models.BooleanField(
        default=False, help_text="Read every row, ignoring the high-water mark."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    rows_read = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    rejects = models.JSONField(
        default=list, blank=True, help_text="The first rejected rows: row number and reason."
    )
    high_water_mark_before = models.JSONField(null=True, blank=True)
    high_water_mark = models.JSONField(null=True, blank=True)

    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(
                fields=["profile_import"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_run_per_import",
            )
        ]

    def __str__(self) -> str:
        return f"Import run #{self.pk} of {self.profile_import}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ImportedProfile(models.Model):
    """A distinct id an import returned, and the run that last returned it: what
    delete_missing compares against (never profiles another feed created)."""

    profile_import = models.ForeignKey(
        ProfileImport, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    distinct_id = models.CharField(max_length=255)
    last_run_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile_import", "distinct_id"], name="unique_imported_profile"
            )
        ]

    def __str__(self) -> str:
        return self.distinct_id


@receiver(post_delete, sender=ProfileImport, dispatch_uid="sources.import_deleted_unschedule")
def _import_deleted_unschedule(sender: type[ProfileImport], instance: ProfileImport, **kwargs: object) -> None:
    # However an import is deleted (admin, shell), its schedule must not outlive it.
    from sources.schedules import import_schedule_delete

    import_schedule_delete(import_id=instance.pk)
