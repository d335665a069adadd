"""Read-side queries over cohorts and profiles.

Every function returns a lazy queryset (or a count computed by the database) so callers,
the sync engine above all, can annotate, filter and stream members without loading them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from cohorts.models import Cohort, Profile, StaticMembership
from cohorts.rules import DISTINCT_ID_PROPERTY, RuleError, rules_to_q
from cohortsync_site.database import PageCount, QueryTooSlow, page_count, statement_time_limit

PREVIEW_LIMIT = 50
# Kinds whose members are the distinct ids stored in StaticMembership.
LISTED_KINDS = (Cohort.Kind.STATIC, Cohort.Kind.SQL)
EMAIL_PROPERTY = "$email"
# Profiles whose property names are offered while writing rules: the newest ones only
# (the names of a million JSON documents would be a full scan).
PROPERTY_NAMES_SAMPLE = 1000


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
    return profiles_matching(cohort.rules)


def profiles_matching(rules: dict[str, Any]) -> QuerySet[Profile]:
    """Profiles matching rules that may not be saved yet (the editor's live count).
    Raises cohorts.rules.RuleError for bad rules."""
    return Profile.objects.filter(rules_to_q(rules))


@dataclass(frozen=True)
class PropertyCoverage:
    members: int
    with_property: int


def members_property_coverage(members: QuerySet[Profile], prop: str) -> PropertyCoverage:
    """How many of `members` have `prop` set (not missing, null or ""): two counts."""
    total = members.count()
    if prop == DISTINCT_ID_PROPERTY:
        return PropertyCoverage(members=total, with_property=total)
    is_set = rules_to_q({"all": [{"property": prop, "op": "is_set"}]})
    return PropertyCoverage(members=total, with_property=members.filter(is_set).count())


def profile_property_names(*, sample: int = PROPERTY_NAMES_SAMPLE) -> list[str]:
    """Property names seen on the newest profiles, sorted, "$distinct_id" first."""
    names: set[str] = set()
    for properties in Profile.objects.order_by("-pk").values_list("properties", flat=True)[:sample]:
        if isinstance(properties, dict):
            names.update(key for key in properties if isinstance(key, str))
    return [DISTINCT_ID_PROPERTY, *sorted(names - {DISTINCT_ID_PROPERTY})]


def cohort_member_count(cohort: Cohort) -> int:
    return cohort_members(cohort).count()


def cohort_member_page_count(cohort: Cohort) -> PageCount:
    """The member count a page shows: exact, or PostgreSQL's estimate for a cohort of
    millions (counting 10M members takes seconds, and the cohort page shows it on every view)."""
    return page_count(cohort_members(cohort))


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


ID_COUNT_CHUNK = 5000


def profiles_with_ids_count(distinct_ids: Iterable[str]) -> int:
    """How many of these distinct ids have a profile (each id counted once), in chunks: a
    static list being replaced may be a million ids long."""
    total = 0
    chunk: set[str] = set()
    for distinct_id in distinct_ids:
        chunk.add(distinct_id)
        if len(chunk) >= ID_COUNT_CHUNK:
            total += Profile.objects.filter(distinct_id__in=chunk).count()
            chunk = set()
    if chunk:
        total += Profile.objects.filter(distinct_id__in=chunk).count()
    return total


def cohort_dynamic_sync_names(cohort: Cohort) -> list[str]:
    """Names of the enabled dynamic syncs of the cohort: the ones whose next run removes
    whoever leaves it (through the syncs' reverse relation: cohorts do not import syncs)."""
    if cohort.pk is None:
        return []
    return list(
        cohort.syncs.filter(mode="dynamic", enabled=True).order_by("name").values_list("name", flat=True)
    )


# Counting a cohort before and after an edit is two counts over the profiles; past this
# the save goes ahead unconfirmed (the syncs' mass-removal guard still holds the run).
SHRINK_COUNT_TIME_LIMIT_SECONDS = 10
_COUNTED_KINDS = (Cohort.Kind.RULES, Cohort.Kind.STATIC)


@dataclass(frozen=True)
class CohortShrink:
    """A save that would empty or halve a cohort dynamic syncs keep in sync."""

    name: str
    before: int
    after: int
    syncs: list[str]

    @property
    def message(self) -> str:
        synced = ", ".join(f"“{name}”" for name in self.syncs)
        which = "keeps" if len(self.syncs) == 1 else "keep"
        return (
            f"Saving would take “{self.name}” from {self.before:,} to {self.after:,} members. "
            f"{synced} {which} it in sync: the next run would remove {self.before - self.after:,} "
            "users from the destination (a run removing more than half of them waits for "
            "approval). If that is what you want, tick “Yes, save it” and save again."
        )


def cohort_shrink(
    *,
    cohort: Cohort,
    kind: str | None,
    rules: Any,
    new_static_ids: Iterator[str] | None,
    definition_changed: bool,
) -> CohortShrink | None:
    """Whether saving this definition would empty or halve the stored cohort while enabled
    dynamic syncs use it (None when not, or when it cannot be told in time)."""
    if cohort.pk is None or not definition_changed:
        return None
    syncs = cohort_dynamic_sync_names(cohort)
    stored = Cohort.objects.filter(pk=cohort.pk).first()
    if not syncs or stored is None or stored.kind not in _COUNTED_KINDS or kind not in _COUNTED_KINDS:
        return None
    try:
        with statement_time_limit(SHRINK_COUNT_TIME_LIMIT_SECONDS):
            before = cohort_member_count(stored)
            if before == 0:
                return None
            if kind == Cohort.Kind.RULES:
                after = profiles_matching(rules).count() if rules else 0
            elif new_static_ids is not None:
                after = profiles_with_ids_count(new_static_ids)
            else:
                after = cohort_member_count(Cohort(pk=cohort.pk, kind=Cohort.Kind.STATIC))
    except (RuleError, QueryTooSlow):
        return None
    if after == 0 or after * 2 <= before:
        return CohortShrink(name=stored.name, before=before, after=after, syncs=syncs)
    return None
