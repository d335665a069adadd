"""A person builds a cohort with the rule builder and sees who matches before saving."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from cohorts.models import Cohort
from tests.factories import ProfileFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


def test_rule_builder_writes_the_json_and_shows_the_live_count(log_in: Any, live_server: Any) -> None:
    for n in range(3):
        ProfileFactory(distinct_id=f"pro-{n}", properties={"$email": f"pro{n}@example.com", "plan": "pro"})
    ProfileFactory(distinct_id="free-0", properties={"$email": "free0@example.com", "plan": "free"})
    page = log_in()
    page.goto(f"{live_server.url}/admin/cohorts/cohort/add/")

    page.get_by_label("Name").fill("Pro users")
    builder = page.locator("#rule-builder")
    builder.get_by_role("button", name="+ Condition").click()
    builder.get_by_label("Property").fill("plan")
    builder.get_by_label("Operator").select_option(label="is")
    builder.get_by_label("Value").fill("pro")

    preview = page.locator("#rule-preview")
    expect(preview).to_contain_text("3 profiles match these rules right now.")
    expect(preview.get_by_role("link", name="pro-0")).to_be_visible()
    rules = json.loads(page.locator("#id_rules").input_value())
    assert rules == {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}

    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert Cohort.objects.get(name="Pro users").rules == rules


def test_every_problem_of_the_json_is_listed_before_saving(log_in: Any, live_server: Any) -> None:
    page = log_in()
    page.goto(f"{live_server.url}/admin/cohorts/cohort/add/")

    page.get_by_label("Rules as JSON").fill(json.dumps(
        {"all": [{"property": "plan", "op": "eqq", "value": "pro"}, {"property": "seats", "op": "gt"}]}))

    errors = page.locator("#rule-preview .rule-preview-errors")
    expect(errors).to_contain_text("These rules have 2 problems:")
    expect(errors.locator("li")).to_have_text([
        "all[0]: unknown op 'eqq' (expected one of eq, neq, in, not_in, contains, gt, gte, lt, lte, "
        "is_set, is_not_set, within_last_days, more_than_days_ago).",
        "all[1]: op 'gt' needs a 'value'.",
    ])
    # The builder draws what it can: the unknown operator is shown as such.
    expect(page.locator("#rule-builder .rule-op").first).to_have_value("eqq")


def test_emptying_a_synced_cohort_asks_before_saving(log_in: Any, live_server: Any) -> None:
    from tests.factories import CohortFactory, SyncFactory

    for n in range(3):
        ProfileFactory(properties={"plan": "pro", "$email": f"pro{n}@example.com"})
    cohort = CohortFactory(name="Pro users", rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    SyncFactory(cohort=cohort, name="Pro → Marketo")
    page = log_in()
    page.goto(f"{live_server.url}/admin/cohorts/cohort/{cohort.pk}/change/")
    expect(page.get_by_role("link", name="Pro → Marketo")).to_be_visible()

    page.locator("#rule-builder").get_by_label("Value").fill("enterprise")

    expect(page.locator("#rule-preview")).to_contain_text("0 profiles match these rules right now.")
    expect(page.locator("#rule-preview .rule-preview-warning")).to_contain_text(
        "Saving would take this cohort from 3 to 0 members; Pro → Marketo would then remove 3 users")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".errornote").first).to_contain_text("Please correct the error below.")
    page.get_by_label("Yes, save it: “Pro users” goes from 3 to 0 members").check()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    cohort.refresh_from_db()
    assert cohort.rules == {"all": [{"property": "plan", "op": "eq", "value": "enterprise"}]}


def test_the_builder_steps_aside_for_other_kinds(log_in: Any, live_server: Any) -> None:
    page = log_in()
    page.goto(f"{live_server.url}/admin/cohorts/cohort/add/")
    expect(page.locator("#rule-builder")).to_be_visible()

    page.get_by_label("Kind").select_option(label="SQL query over a source")
    expect(page.locator("#rule-builder")).to_be_hidden()
    expect(page.locator("#id_sql")).to_be_visible()
    page.get_by_label("Kind").select_option(label="Static list of distinct ids")
    expect(page.locator("#rule-builder")).to_be_hidden()
    page.get_by_label("Kind").select_option(label="Rules over profile properties")
    expect(page.locator("#rule-builder")).to_be_visible()
