"""Read-side queries over cohorts and profiles."""

from __future__ import annotations

from django.db.models import QuerySet

from cohorts.models import Cohort, Profile, StaticMembership
from cohorts.rules import rules_to_q


def cohort_members(cohort: Cohort) -> QuerySet[Profile]:
    """The cohort's current members, as a lazy queryset evaluated in the database."""
    if cohort.kind == Cohort.Kind.STATIC:
        listed = StaticMembership.objects.filter(cohort=cohort).values("distinct_id")
        return Profile.objects.filter(distinct_id__in=listed)
    return Profile.objects.filter(rules_to_q(cohort.rules or {"all": []}))


def cohort_member_count(cohort: Cohort) -> int:
    return cohort_members(cohort).count()
