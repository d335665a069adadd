"""A person logs in and lands on the dashboard."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


def test_staff_logs_in_and_sees_the_dashboard(log_in: Any) -> None:
    page = log_in()

    expect(page).to_have_title("Cohorts, destinations and syncs | CohortSync")
    expect(page.get_by_role("heading", name="Syncs")).to_be_visible()


def test_wrong_password_is_refused_with_a_message(live_server: Any, page: Any) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()

    expect(page.locator(".errornote")).to_contain_text("correct username and password")
