"""Read-side queries over cohorts and profiles.

Every function returns a lazy queryset (or a count computed by the database) so callers,
the sync engine above all, can annotate, filter and stream members without loading them.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from cohorts.models import Cohort, Profile, StaticMembership
from cohorts.rules import rules_to_q

PREVIEW_LIMIT = 50
# Kinds whose members are the distinct ids stored in StaticMembership.
LISTED_KINDS = (Cohort.Kind.STATIC, Cohort.Kind.SQL)
EMAIL_PROPERTY = "$email"


def cohort_members(cohort: Cohort) -> QuerySet[Profile]:
    """The cohort's current members, evaluated in the database.

    Static and SQL cohorts: profiles whose distinct id is listed (ids without a profile yet
    are not members; an SQL cohort's list is what its last refresh read). Rules cohorts: profiles matching the rules; a rules cohort whose rules are
    empty has no members, so a half-configured cohort can never export everyone
    (``{"all": []}`` is the explicit way to say "every profile").
    Raises cohorts.rules.RuleError if stored rules are invalid.
    """
    if cohort.kind in LISTED_KINDS:
        listed = StaticMembership.objects.filter(cohort_id=cohort.pk).values("distinct_id")
        return Profile.objects.filter(distinct_id__in=listed)
    if not cohort.rules:
        return Profile.objects.none()
    return Profile.objects.filter(rules_to_q(cohort.rules))


def cohort_member_count(cohort: Cohort) -> int:
    return cohort_members(cohort).count()


def cohort_members_preview(cohort: Cohort, limit: int = PREVIEW_LIMIT) -> QuerySet[Profile]:
    """The first members by distinct id, for a quick look in the admin."""
    return cohort_members(cohort).order_by("distinct_id")[:limit]


def cohort_static_member_count(cohort: Cohort) -> int:
    """How many distinct ids a static cohort lists, with or without a profile."""
    return StaticMembership.objects.filter(cohort_id=cohort.pk).count()


def profiles_search(queryset: QuerySet[Profile], term: str) -> QuerySet[Profile]:
    """Profiles whose distinct id equals or starts with the term, or whose $email equals it.

    Only index-friendly matches: substring search over a million JSON documents would turn
    every admin search into a full table scan.
    """
    term = term.strip()
    if not term:
        return queryset
    # The rule engine's eq is jsonb containment on PostgreSQL, which the GIN index serves.
    by_email = rules_to_q(
        {"all": [{"property": EMAIL_PROPERTY, "op": "in", "value": sorted({term, term.lower()})}]}
    )
    return queryset.filter(Q(distinct_id__startswith=term) | by_email)
