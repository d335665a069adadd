"""Run history and lists in the browser at 1280 px (the conftest's viewport), navigation
sidebar open: markers and charts visible, lists that show their counts without scrolling
sideways."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import Page, expect

from syncs.models import RunStatus, SyncFailure, SyncRun
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    SyncFactory,
    SyncFailureFactory,
    SyncRunFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]

LONG = "a name long enough to be cut in any list column it is shown in, twice over"


def history(sync: Any, count: int) -> list[SyncRun]:
    start = timezone.now() - dt.timedelta(hours=count)
    runs = []
    for n in range(count):
        status = RunStatus.PARTIAL if n % 5 == 4 else RunStatus.SUCCEEDED
        run = SyncRunFactory(sync=sync, status=status, is_dry_run=n == 3, started_at=start + dt.timedelta(hours=n),
                             finished_at=start + dt.timedelta(hours=n, minutes=2), succeeded_adds=20 + n,
                             succeeded_removes=n % 4, failed_adds=1 if status == RunStatus.PARTIAL else 0,
                             acknowledged_members=1000 + 15 * n)
        SyncRun.objects.filter(pk=run.pk).update(created_at=start + dt.timedelta(hours=n))
        runs.append(run)
    return runs


def box_fits(page: Page, selector: str) -> tuple[int, int]:
    return page.evaluate(
        "(selector) => { const box = document.querySelector(selector); return [box.scrollWidth, box.clientWidth]; }",
        selector,
    )


def test_dashboard_shows_run_markers_and_trends_across_the_page(log_in: Any, live_server: Any) -> None:
    sync = SyncFactory(name="Pro users → SFMC", cohort=CohortFactory(name="Pro users"))
    runs = history(sync, 34)
    page = log_in()

    page.goto(f"{live_server.url}/admin/")

    panel = page.locator("#syncs-dashboard")
    expect(panel.get_by_role("columnheader", name="Last 30 runs")).to_be_visible()
    markers = panel.locator(".run-marker")
    expect(markers).to_have_count(30)
    latest = runs[-1]
    expect(markers.last).to_have_attribute("title", f"Run #{latest.pk} · Succeeded · " + (
        timezone.localtime(latest.finished_at).strftime("%-d %b %Y, %H:%M")) + " · 53 added, 1 removed, 0 failed, 0 skipped")
    expect(panel.locator(".members-sparkline")).to_be_visible()
    expect(panel.locator(".members-now")).to_have_text("1,495")
    expect(panel.get_by_text("Every 15 minutes · not scheduled")).to_be_visible()
    # The panel uses the page's width: it is wider than the app list below it.
    panel_width = panel.bounding_box()["width"]
    assert panel_width > 1100, panel_width
    assert box_fits(page, "#syncs-dashboard")[0] <= box_fits(page, "#syncs-dashboard")[1]

    markers.last.click()
    expect(page.get_by_role("heading", name=f"Run #{latest.pk} of Pro users → SFMC")).to_be_visible()


def test_sync_page_charts_members_and_changes(log_in: Any, live_server: Any) -> None:
    sync = SyncFactory(name="Pro users → SFMC")
    history(sync, 12)
    page = log_in()

    page.goto(f"{live_server.url}/admin/syncs/sync/{sync.pk}/change/")

    section = page.locator("#run-history")
    section.scroll_into_view_if_needed()
    expect(section.locator(".run-marker")).to_have_count(12)
    members = section.get_by_role("img", name="Acknowledged members after each of the last 12 runs: 1,000 then, 1,165 now")
    expect(members).to_be_visible()
    expect(members.locator("circle")).to_have_count(12)
    changes = section.locator("svg.run-chart-changes")
    expect(changes).to_be_visible()
    # 11 runs sent (one was a dry run): one bar each for adds, plus removes and failures where any.
    assert changes.locator("rect").count() >= 11
    expect(section.get_by_text("Added", exact=True)).to_be_visible()


@pytest.mark.parametrize(("path", "headers"), [
    ("syncrun", ["Run", "Status", "Created at", "Duration", "Adds", "Removes", "Skipped", "API calls"]),
    ("sync", ["Name", "Cohort → destination", "Target field", "Mode", "Last run", "Next run due"]),
    ("syncfailure", ["Run", "Identity", "Operation · code", "Message", "Retriable"]),
])
def test_lists_show_every_column_at_1280_px_without_scrolling_sideways(
    log_in: Any, live_server: Any, path: str, headers: list[str]
) -> None:
    sync = SyncFactory(name=f"Sync with {LONG}", cohort=CohortFactory(name=f"Cohort with {LONG}"),
                       destination=DestinationFactory(name=f"Destination with {LONG}"),
                       target_field="cohort_field_with_a_rather_long_api_name__c")
    admin = get_user_model().objects.create(username="an.administrator.with.a.long.name", is_staff=True)
    started = timezone.now() - dt.timedelta(hours=2)
    big = SyncRunFactory(
        sync=sync, status=RunStatus.AWAITING_APPROVAL, triggered_by=admin, started_at=started,
        finished_at=started + dt.timedelta(hours=1, minutes=23, seconds=45), planned_adds=1_234_567,
        succeeded_adds=1_222_222, failed_adds=12_345, succeeded_removes=987_654, failed_removes=43_210,
        skipped_users=123_456, api_calls=456_789,
    )
    SyncRunFactory(sync=sync, status=RunStatus.PARTIAL, is_dry_run=True, planned_adds=2_000_000)
    SyncRunFactory(sync=sync, status=RunStatus.SKIPPED)
    message = "The destination rejected this user because the value of the field is not valid; " * 4
    SyncFailureFactory(run=big, identity_value=f"someone.with.{LONG.replace(' ', '.')}@example.com",
                       distinct_id=f"distinct-{LONG.replace(' ', '-')}", code="missing_identity_property",
                       operation=SyncFailure.Operation.REMOVE, message=message, retriable=True)
    page = log_in()

    page.goto(f"{live_server.url}/admin/syncs/{path}/")

    table = page.locator("#result_list")
    expect(table).to_be_visible()
    scroll_width, client_width = box_fits(page, "#changelist-form .results")
    assert scroll_width <= client_width, f"the list scrolls sideways: {scroll_width} > {client_width}"
    for header in headers:
        cell = table.locator("thead th").filter(has_text=header).first
        expect(cell).to_be_visible()
        assert cell.bounding_box()["x"] + cell.bounding_box()["width"] <= 1280
    # Cut text stays reachable: its whole value is the element's title.
    cut = table.locator(".one-line").first
    assert cut.get_attribute("title")
    if path == "syncrun":
        expect(table.get_by_text("1,222,222")).to_be_visible()
        expect(table.get_by_text("456,789")).to_be_visible()
        expect(table.get_by_text("dry run")).to_be_visible()
    if path == "syncfailure":
        cell = table.locator(".message")
        expect(cell).to_have_attribute("title", message)
        assert cell.bounding_box()["height"] < 40  # one line, not ten
