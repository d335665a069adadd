"""Bad values in cohort rules: refused by the rule validator (so by the admin, `apply` and the
engine alike) with the condition's path, and an existing cohort keeps its rules and members."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from cohorts.forms import CohortForm
from cohorts.models import Cohort
from cohorts.rules import RuleError, validate_rules
from cohorts.selectors import cohort_member_count
from tests.bad_input.bad_values import (
    BAD_VALUE_IDS,
    BAD_VALUES,
    HUGE_INTEGER,
    NAN,
    NUL,
    TOO_DEEP,
    infinity,
    surrogate,
)
from tests.factories import CohortFactory, ProfileFactory

pytestmark = pytest.mark.django_db

GOOD_RULES = {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}


@pytest.fixture
def pro_cohort():
    ProfileFactory(distinct_id="p1", properties={"plan": "pro", "seats": 3})
    ProfileFactory(distinct_id="f1", properties={"plan": "free", "seats": 1})
    return CohortFactory(name="Pro", rules=GOOD_RULES)


def edit_rules(cohort: Cohort, rules_text: str) -> CohortForm:
    data = {"name": cohort.name, "kind": cohort.kind, "description": "edited", "rules": rules_text}
    return CohortForm(data=data, instance=cohort)


def assert_untouched(cohort: Cohort) -> None:
    cohort.refresh_from_db()
    assert (cohort.rules, cohort.description) == (GOOD_RULES, "")
    assert cohort_member_count(cohort) == 1


@pytest.mark.parametrize("bad", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_bad_condition_value_is_refused_by_validator_and_form(pro_cohort, bad):
    rules_text = (
        '{"all": [{"property": "plan", "op": "eq", "value": "pro"}, '
        f'{{"property": "seats", "op": "gte", "value": {bad.json}}}]}}'
    )
    # Nesting is reported at the outermost key holding it, where the fix starts.
    expected = bad.message("all" if bad.problem == TOO_DEEP else "all[1].value") + "."

    with pytest.raises(RuleError) as raised:
        validate_rules(json.loads(rules_text))
    assert str(raised.value) == expected

    form = edit_rules(pro_cohort, rules_text)
    assert not form.is_valid()
    assert form.errors["rules"] == [expected]
    assert_untouched(pro_cohort)


@pytest.mark.parametrize(
    "condition, expected",
    [
        ('{"property": "pl\\u0000an", "op": "is_set"}', f"all[0].property: {NUL}."),
        ('{"property": "\\ud800", "op": "eq", "value": 1}', f"all[0].property: {surrogate('d800')}."),
        ('{"property": "plan", "op": "in", "value": ["pro", NaN]}', f"all[0].value[1]: {NAN}."),
        ('{"property": "plan", "op": "in", "value": ["pro", "te\\u0000am"]}', f"all[0].value[1]: {NUL}."),
        ('{"property": "plan", "op": "contains", "value": "\\udbff"}',
         f"all[0].value: {surrogate('dbff')}."),
        ('{"property": "n", "op": "lt", "value": -1e400}', f"all[0].value: {infinity('-')}."),
        ('{"property": "n", "op": "eq", "value": -9223372036854775809}', f"all[0].value: {HUGE_INTEGER}."),
        ('{"property": "n", "op": "within_last_days", "value": Infinity}', f"all[0].value: {infinity()}."),
        ('{"property": "plan", "op": "eq", "value": "pro", "\\u0000": 1}',
         f'all[0]["\\u0000"]: the key {NUL}.'),
    ],
    ids=[
        "nul-in-property", "surrogate-in-property", "nan-in-an-in-list", "nul-in-an-in-list",
        "surrogate-in-contains", "minus-1e400-lt", "integer-below-64-bits", "infinite-days",
        "nul-key-in-condition",
    ],
)
def test_bad_condition_names_its_path(pro_cohort, condition, expected):
    rules_text = f'{{"all": [{condition}]}}'

    with pytest.raises(RuleError) as raised:
        validate_rules(json.loads(rules_text))
    assert str(raised.value) == expected
    form = edit_rules(pro_cohort, rules_text)
    assert form.errors["rules"] == [expected]
    assert_untouched(pro_cohort)


def test_stored_rules_with_an_integer_beyond_64_bits_are_reported_not_a_500(admin_client):
    """SQLite cannot bind such an integer: evaluating it was an OverflowError (a 500)."""
    ProfileFactory(distinct_id="p1", properties={"seats": 3})
    cohort = CohortFactory(rules={"all": [{"property": "seats", "op": "gt", "value": 2**64}]})

    with pytest.raises(RuleError, match=r"^all\[0\]\.value: is a whole number beyond 64 bits"):
        cohort_member_count(cohort)
    page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk]))

    assert page.status_code == 200
    assert "The stored rules are invalid: all[0].value: is a whole number beyond 64 bits" in (
        page.content.decode()
    )


def test_rules_at_the_group_depth_limit_are_within_the_value_depth_limit(pro_cohort):
    """Ten nested groups, the rule language's own limit, stay under the JSON depth limit."""
    rules: dict = {"all": [{"property": "plan", "op": "in", "value": ["pro"]}]}
    for _ in range(9):
        rules = {"any": [rules]}

    validate_rules(rules)
    form = edit_rules(pro_cohort, json.dumps(rules))
    assert form.is_valid(), form.errors
    form.save()
    assert cohort_member_count(pro_cohort) == 1
