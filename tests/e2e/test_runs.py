"""Runs in the browser: export now against the Marketo sandbox and read the run page, the
progress bar moving without a reload, the failures and both CSVs, finding a run by its
number. Each test asserts on what a person sees."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from syncs.models import RunStatus, SyncRun
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    ProfileFactory,
    SyncFactory,
    SyncRunFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


def downloaded_csv(page: Page, link_name: str) -> list[list[str]]:
    with page.expect_download() as download:
        page.get_by_role("link", name=link_name).click()
    with open(download.value.path(), encoding="utf-8") as handle:
        return list(csv.reader(io.StringIO(handle.read())))


def test_export_now_then_read_the_run_its_failures_and_its_csvs(log_in: Any, live_server: Any, sandbox: Any) -> None:
    members = [ProfileFactory(properties={"$email": f"pro{n}@example.com", "plan": "pro"}) for n in range(5)]
    refused = ProfileFactory(properties={"$email": "refused@example.com", "plan": "pro"})
    nameless = ProfileFactory(properties={"plan": "pro"})
    sandbox.sandboxes.marketo.configure(
        reject_emails={"refused@example.com": {"code": "1003", "message": "Invalid email address"}}
    )
    destination = DestinationFactory(
        marketo=True, name="Marketo sandbox", base_url=sandbox.marketo_base_url,
        client_id="sandbox-client-id", client_secret="sandbox-client-secret",
    )
    sync = SyncFactory(name="Pro users → Marketo", cohort=CohortFactory(name="Pro users"),
                       destination=destination, target_field="cohortProUsers")
    page = log_in()

    page.goto(f"{live_server.url}/admin/syncs/sync/{sync.pk}/change/")
    page.get_by_role("button", name="Export now").click()

    expect(page.get_by_role("heading", name="Run #")).to_contain_text("Pro users → Marketo")
    bar = page.locator("#run-progress-bar")
    expect(bar).to_have_js_property("value", 100)
    expect(page.locator("#run-progress-summary")).to_have_text("6 of 6 planned users attempted (100%)")
    expect(page.locator("#content-main .run-status")).to_have_text("Partially failed")
    expect(page.locator('[data-count="succeeded_adds"]')).to_have_text("5")

    # Rejected users first, then the skipped one, each group counted.
    rejected = page.locator("#failures-rejected")
    skipped = page.locator("#failures-skipped")
    expect(rejected).to_have_text("Rejected by the destination: 1")
    expect(skipped).to_have_text("Skipped before sending (no or invalid identity): 1")
    assert rejected.bounding_box()["y"] < skipped.bounding_box()["y"]
    expect(page.locator("table.run-failures-rejected")).to_contain_text("refused@example.com")
    expect(page.locator("table.run-failures-skipped")).to_contain_text(nameless.distinct_id)

    failures = downloaded_csv(page, "Download all as CSV")
    assert {row[2] for row in failures[1:]} == {"refused@example.com", ""}
    assert nameless.distinct_id in {row[1] for row in failures[1:]}

    plan = downloaded_csv(page, "Download the whole plan (CSV)")
    assert plan[0] == ["run", "operation", "identity", "distinct_id"]
    assert sorted(row[2] for row in plan[1:]) == sorted(
        [f"pro{n}@example.com" for n in range(5)] + ["refused@example.com"]
    )
    assert {row[3] for row in plan[1:]} == {p.distinct_id for p in [*members, refused]}

    page.get_by_role("link", name="Open in the failure list").click()
    expect(page.locator("#result_list")).to_contain_text("refused@example.com")


def test_the_progress_bar_follows_a_running_run_to_its_end_without_reloading(log_in: Any, live_server: Any) -> None:
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now() - dt.timedelta(seconds=30),
                         planned_adds=400, attempted_adds=100, succeeded_adds=100)
    page = log_in()
    page.goto(f"{live_server.url}/admin/syncs/syncrun/{run.pk}/change/")
    bar = page.locator("#run-progress-bar")
    expect(bar).to_have_js_property("value", 25)
    expect(page.locator("#run-progress-summary")).to_have_text("100 of 400 planned users attempted (25%)")
    expect(page.locator("#run-progress")).to_contain_text("users/s")
    expect(page.locator("#run-progress")).to_contain_text("left")
    page.evaluate("window.stillTheSamePage = true")

    SyncRun.objects.filter(pk=run.pk).update(attempted_adds=300, succeeded_adds=290, failed_adds=10)
    expect(bar).to_have_js_property("value", 75, timeout=10_000)
    expect(page.locator('[data-count="failed_adds"]')).to_have_text("10")

    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.PARTIAL, attempted_adds=400, succeeded_adds=385,
                                             failed_adds=15, finished_at=now, heartbeat_at=now)
    expect(bar).to_have_js_property("value", 100, timeout=10_000)
    expect(page.locator("#run-progress-summary")).to_have_text("400 of 400 planned users attempted (100%)")
    expect(page.locator("#content-main .run-status")).to_have_text("Partially failed")
    expect(page.get_by_text("The run has ended.")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True


def test_a_run_number_typed_in_the_search_opens_the_run(log_in: Any, live_server: Any) -> None:
    SyncRunFactory.create_batch(3, status=RunStatus.SUCCEEDED)
    wanted = SyncRunFactory(status=RunStatus.FAILED, sync=SyncFactory(name="Churn risk → SFMC"))
    page = log_in()
    page.goto(f"{live_server.url}/admin/syncs/syncrun/")

    page.locator("#searchbar").fill(str(wanted.pk))
    page.locator("#searchbar").press("Enter")

    expect(page.get_by_role("heading", name=f"Run #{wanted.pk} of Churn risk → SFMC")).to_be_visible()
    expect(page.locator("#content-main .run-status")).to_have_text("Failed")
