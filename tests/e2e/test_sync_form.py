"""A person creates a sync: the destination's fields are offered, the identity property's
coverage is shown, the schedule only for dynamic syncs, and a missing field is refused."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from syncs.models import Sync
from tests.factories import CohortFactory, ProfileFactory
from tests.sandbox_destinations import sandbox_destination

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def pro_cohort() -> Any:
    for n in range(2):
        ProfileFactory(properties={"plan": "pro", "$email": f"pro{n}@example.com"})
    ProfileFactory(properties={"plan": "pro"})
    return CohortFactory(name="Pro users", rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})


def test_create_a_sync_from_the_destinations_fields(log_in: Any, live_server: Any, sandbox: Any,
                                                     pro_cohort: Any) -> None:
    marketo = sandbox_destination(sandbox, "marketo", name="Marketo sandbox")
    page = log_in()
    page.goto(f"{live_server.url}/admin/syncs/sync/add/")

    page.get_by_label("Name").fill("Pro users → Marketo")
    page.get_by_label("Cohort").select_option(label="Pro users")
    page.get_by_label("Destination").select_option(label="Marketo sandbox")
    # Left empty, the identity is the destination kind's default: $email for Marketo.
    expect(page.get_by_label("Identity property")).to_have_attribute("placeholder", "$email (the destination's default)")
    expect(page.locator("#identity-coverage")).to_have_text(
        "2 of 3 members have $email; 1 without it would be skipped.")
    choices = page.get_by_role("group", name="Fields you can pick")
    expect(choices.get_by_role("button", name="cohortProUsers")).to_be_visible()
    expect(choices.get_by_role("button", name="cohortCrmLocked")).to_have_count(0)  # read-only
    choices.get_by_role("button", name="cohortProUsers").click()
    expect(page.get_by_label("Target field")).to_have_value("cohortProUsers")
    expect(page.get_by_label("Interval minutes")).to_have_attribute("placeholder", "120")

    page.get_by_label("Mode").select_option(label="One-time export")
    expect(page.get_by_label("Interval minutes")).to_be_hidden()
    page.get_by_label("Mode").select_option(label="Dynamic sync")
    expect(page.get_by_label("Interval minutes")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text(
        "Target field checked with the destination. Marketo field Pro Users Cohort (API name cohortProUsers)")
    sync = Sync.objects.get(name="Pro users → Marketo")
    assert (sync.destination, sync.target_field) == (marketo, "cohortProUsers")


def test_a_field_marketo_does_not_have_is_refused_on_save(log_in: Any, live_server: Any, sandbox: Any,
                                                           pro_cohort: Any) -> None:
    sandbox_destination(sandbox, "marketo", name="Marketo sandbox")
    page = log_in()
    page.goto(f"{live_server.url}/admin/syncs/sync/add/")

    page.get_by_label("Name").fill("Pro users → Marketo")
    page.get_by_label("Cohort").select_option(label="Pro users")
    page.get_by_label("Destination").select_option(label="Marketo sandbox")
    page.get_by_label("Target field").fill("cohortProUser")
    expect(page.locator("#target-field-hint")).to_contain_text("Marketo has no such field")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".field-target_field .errorlist")).to_contain_text(
        "Marketo has no lead field 'cohortProUser'. Create a Boolean custom field")
    assert not Sync.objects.exists()
