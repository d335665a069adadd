from __future__ import annotations

from django.db import models


class Profile(models.Model):
    """A user known to CohortSync: a stable id plus free-form properties ($email, plan, ...)."""

    distinct_id = models.CharField(max_length=255, unique=True)
    properties = models.JSONField(
        default=dict,
        blank=True,
        help_text="JSON object of user properties, e.g. {\"$email\": \"ana@example.com\", "
        "\"plan\": \"pro\"}. Dates as ISO-8601 strings (UTC).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["distinct_id"]

    def __str__(self) -> str:
        return self.distinct_id


class Cohort(models.Model):
    """A set of profiles, defined by rules over properties, as a static list of ids, or by
    a query over a source whose distinct ids are stored like a static list's."""

    class Kind(models.TextChoices):
        RULES = "rules", "Rules over profile properties"
        STATIC = "static", "Static list of distinct ids"
        SQL = "sql", "SQL query over a source"

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RULES)
    rules = models.JSONField(
        null=True,
        blank=True,
        help_text='Nested groups, e.g. {"all": [{"property": "plan", "op": "eq", "value": "pro"}, '
        '{"any": [...]}]}. Ops: eq, neq, in, not_in, contains, gt, gte, lt, lte, is_set, '
        "is_not_set, within_last_days, more_than_days_ago.",
    )
    source = models.ForeignKey(
        "sources.Source",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cohorts",
        help_text="SQL cohorts: the database the query runs on.",
    )
    sql = models.TextField(
        blank=True,
        default="",
        help_text="SQL cohorts: one SELECT returning a distinct_id column (or a single column "
        "of ids). Refreshed before every run of a sync that uses the cohort.",
    )
    refreshed_at = models.DateTimeField(
        null=True, blank=True, help_text="SQL cohorts: when the members were last read."
    )
    refresh_error = models.TextField(
        blank=True, default="", help_text="SQL cohorts: why the last refresh failed."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StaticMembership(models.Model):
    """One distinct id listed in a static cohort (or returned by an SQL cohort's query).

    Keyed by distinct_id rather than by profile so a list can name users before their
    profiles are imported; they become members once the profile exists.
    """

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="static_memberships")
    distinct_id = models.CharField(max_length=255)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cohort", "distinct_id"], name="unique_static_member")
        ]
        indexes = [models.Index(fields=["distinct_id"])]

    def __str__(self) -> str:
        return f"{self.cohort} ∋ {self.distinct_id}"
