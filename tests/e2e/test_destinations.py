"""A person creates a destination of each kind against the sandboxes and tests it."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from destinations.models import Destination
from tests.sandbox_destinations import DE_KEY, SANDBOX_ID, SANDBOX_SECRET

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


@pytest.mark.parametrize(
    ("kind_label", "settings", "connected"),
    [
        ("Salesforce Marketing Cloud: data extension",
         {"Subdomain": "mc-sandbox", "Data extension external key": DE_KEY, "Key column": "SubscriberKey"},
         f"Connected: Data extension '{DE_KEY}': 3 columns, key column 'SubscriberKey'"),
        ("Salesforce Marketing Cloud: contacts", {"Subdomain": "mc-sandbox"},
         "Connected: Attribute set 'Email Demographics':"),
        ("Marketo", {}, "Connected: Marketo at 127.0.0.1"),
    ],
)
def test_create_a_destination_and_test_its_connection(
    log_in: Any, live_server: Any, sandbox: Any, kind_label: str, settings: dict[str, str], connected: str
) -> None:
    page = log_in()
    page.goto(f"{live_server.url}/admin/destinations/destination/add/")

    page.get_by_label("Name").fill(f"{kind_label} sandbox")
    page.get_by_label("Kind").select_option(label=kind_label)
    for label, value in settings.items():
        page.get_by_label(label).fill(value)
    if kind_label == "Marketo":
        page.get_by_label("REST endpoint").fill(sandbox.marketo_base_url)
    else:
        page.get_by_label("Auth base URL").fill(sandbox.sfmc_auth_base_url)
    page.get_by_label("Client id").fill(SANDBOX_ID)
    page.get_by_label("Client secret").fill(SANDBOX_SECRET)
    page.get_by_role("button", name="Save and continue editing").click()

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.get_by_role("button", name="Test connection").click()

    message = page.locator(".messagelist .success")
    expect(message).to_contain_text(connected)
    expect(page.locator(".messagelist")).not_to_contain_text("Connected: Connected")
    expect(page.locator(".field-connection_status_detail")).to_contain_text("Connected ✓")
    assert Destination.objects.get(name=f"{kind_label} sandbox").is_connected is True
