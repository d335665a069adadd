"""Cohort membership selectors: static lists, rules, laziness, preview, search."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Length

from cohorts.models import Profile
from cohorts.rules import RuleError, rules_to_q
from cohorts.selectors import (
    cohort_member_count,
    cohort_members,
    cohort_members_preview,
    profiles_search,
)
from tests.factories import (
    CohortFactory,
    ProfileFactory,
    StaticCohortFactory,
    StaticMembershipFactory,
)

pytestmark = pytest.mark.django_db


def ids(queryset) -> list[str]:
    return sorted(queryset.values_list("distinct_id", flat=True))


def test_static_cohort_members_are_listed_ids_with_a_profile():
    cohort = StaticCohortFactory()
    other = StaticCohortFactory()
    for distinct_id in ("a", "b", "c"):
        ProfileFactory(distinct_id=distinct_id)
    StaticMembershipFactory(cohort=cohort, distinct_id="a")
    StaticMembershipFactory(cohort=cohort, distinct_id="b")
    StaticMembershipFactory(cohort=cohort, distinct_id="not-imported-yet")
    StaticMembershipFactory(cohort=other, distinct_id="c")
    assert ids(cohort_members(cohort)) == ["a", "b"]
    assert cohort_member_count(cohort) == 2
    # A listed id becomes a member as soon as its profile is imported.
    ProfileFactory(distinct_id="not-imported-yet")
    assert cohort_member_count(cohort) == 3


def test_rules_cohort_members_follow_the_rules():
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "in", "value": ["pro", "team"]}]})
    ProfileFactory(distinct_id="p", properties={"plan": "pro"})
    ProfileFactory(distinct_id="t", properties={"plan": "team"})
    ProfileFactory(distinct_id="f", properties={"plan": "free"})
    assert ids(cohort_members(cohort)) == ["p", "t"]
    cohort.rules = {"all": [{"property": "plan", "op": "not_in", "value": ["pro", "team"]}]}
    assert ids(cohort_members(cohort)) == ["f"]


def test_rules_cohort_without_rules_has_no_members_but_empty_all_means_everyone():
    ProfileFactory.create_batch(3)
    assert cohort_member_count(CohortFactory(rules=None)) == 0
    assert cohort_member_count(CohortFactory(rules={"all": []})) == 3


def test_members_are_a_lazy_queryset_counted_in_one_query(django_assert_num_queries):
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    ProfileFactory.create_batch(4, properties={"plan": "pro"})
    with django_assert_num_queries(0):
        members = cohort_members(cohort)
    assert isinstance(members, QuerySet)
    # The engine can keep filtering and annotating in the database.
    annotated = members.annotate(id_length=Length("distinct_id")).filter(id_length__gt=0)
    with django_assert_num_queries(1):
        assert annotated.count() == 4


def test_preview_is_the_first_members_by_distinct_id():
    cohort = CohortFactory(rules={"all": []})
    for distinct_id in ("d", "b", "a", "c"):
        ProfileFactory(distinct_id=distinct_id)
    assert [p.distinct_id for p in cohort_members_preview(cohort, limit=3)] == ["a", "b", "c"]


def test_invalid_stored_rules_raise_rule_error():
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "like", "value": "p"}]})
    with pytest.raises(RuleError, match="all\\[0\\]: unknown op 'like'"):
        cohort_member_count(cohort)


def test_profiles_search_by_id_prefix_or_exact_email():
    ProfileFactory(distinct_id="acme-1", properties={"$email": "Ana@Acme.io"})
    ProfileFactory(distinct_id="acme-2", properties={"$email": "bo@acme.io"})
    ProfileFactory(distinct_id="zeta", properties={"$email": "acme@zeta.io"})
    everyone = Profile.objects.all()
    assert ids(profiles_search(everyone, "acme")) == ["acme-1", "acme-2"]
    assert ids(profiles_search(everyone, " Ana@Acme.io ")) == ["acme-1"]
    assert ids(profiles_search(everyone, "ACME@ZETA.IO")) == ["zeta"]
    assert ids(profiles_search(everyone, "")) == ["acme-1", "acme-2", "zeta"]
    # Substrings are not searched: they would scan every profile.
    assert ids(profiles_search(everyone, "cme")) == []


def test_equality_rules_can_use_the_properties_index():
    """PostgreSQL gets a GIN index that the generated containment SQL can use; SQLite none."""
    ProfileFactory.create_batch(3)
    queryset = Profile.objects.filter(
        rules_to_q({"all": [{"property": "$email", "op": "eq", "value": "x@example.com"}]})
    )
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "cohorts_profile_properties_gin" in plan
        else:
            cursor.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'cohorts_profile_properties_gin'"
            )
            assert cursor.fetchone()[0] == 0
            assert queryset.count() == 0
