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
