"""A person approves a run the mass-removal guard held, and watches it send."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from syncs.models import RunStatus, SyncRun
from tests.factories import CohortFactory, SyncFactory
from tests.sandbox_destinations import sandbox_destination
from tests.syncs.fakes import pro_profile, run_now, set_plan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]


def test_approve_a_guarded_run(log_in: Any, live_server: Any, sandbox: Any) -> None:
    profiles = [pro_profile(f"pro{n}@example.com") for n in range(4)]
    cohort = CohortFactory(name="Pro users", rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    sync = SyncFactory(name="Pro users → Marketo", cohort=cohort, target_field="cohortProUsers",
                       destination=sandbox_destination(sandbox, "marketo"))
    assert run_now(sync).status == RunStatus.SUCCEEDED
    for profile in profiles[:3]:
        set_plan(profile, "free")
    page = log_in()
    page.goto(f"{live_server.url}/admin/syncs/sync/{sync.pk}/change/")

    page.get_by_role("button", name="Export now").click()

    expect(page.locator(".run-status")).to_have_text("Awaiting approval")
    page.get_by_role("link", name="Review and approve…").click()
    expect(page.locator(".approve-run")).to_contain_text("3 users would be removed from cohortProUsers")
    expect(page.locator(".plan-removes")).to_contain_text("pro0@example.com")
    page.get_by_role("button", name="Yes, send these removals").click()

    expect(page.locator(".messagelist")).to_contain_text("approved by")
    run = SyncRun.objects.filter(sync=sync).order_by("-pk").first()
    page.goto(f"{live_server.url}/admin/syncs/syncrun/{run.pk}/change/")
    expect(page.locator(".run-status")).to_have_text("Succeeded")
    expect(page.locator(".run-counts")).to_contain_text("Remove (set not member)")
    run.refresh_from_db()
    assert (run.succeeded_removes, run.approved_by is not None) == (3, True)
